"""Alerting: which verdict changes to announce (``tracker``: digests, grace, reminders), what a
message says (``message``), where alerts go and how (``settings``: the one settings type), the
state and outbox that survive restarts (``state``), the live engine that turns verdicts into
alerts (``engine``), and the sinks that deliver them (``sinks/``)."""
