"""tblive: live monitor and honest post-hoc verdicts for TensorBoard logs of RL runs."""

__version__ = "0.1.0"
