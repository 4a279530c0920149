"""Alerting: which verdict changes to announce (``tracker``), the live engine that turns verdicts
into alerts (``engine``), and the sinks that deliver them (``sinks/``)."""
