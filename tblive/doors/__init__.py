"""The doors into the one pipeline: ``posthoc`` (read once, judge), ``watch`` (the daemon),
``monitor`` (in-process) and ``integrations`` (SB3 / Lightning callbacks)."""
