"""Judging: tag roles and thresholds, the checks (``rules/``, pure functions of statistics),
findings and the verdict that collects them."""
