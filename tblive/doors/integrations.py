"""Framework callbacks around :class:`tblive.doors.monitor.Monitor`: Stable-Baselines3 and Lightning.

Importing this module imports neither framework.  The classes are built on first attribute
access (``from tblive.doors.integrations import SB3Callback`` imports stable_baselines3 then); a
missing framework raises ImportError naming the package to install.

* :class:`SB3Callback` (a ``stable_baselines3.common.callbacks.BaseCallback``): adds an output
  format to the model's SB3 logger, so every numeric value SB3 records reaches the monitor under
  the tag SB3's TensorBoard output gives it (``rollout/ep_rew_mean``, ``train/value_loss``...),
  with or without ``tensorboard_log``.  ``_on_step`` returns False (SB3 stops training) once
  ``monitor.should_stop`` is True.
* :class:`LightningCallback` (a ``lightning.pytorch.Callback``, or ``pytorch_lightning``'s):
  attaches the monitor to each TensorBoardLogger's SummaryWriter (tags exactly as in the event
  files); other loggers get their ``log_metrics`` wrapped.  Sets ``trainer.should_stop`` once
  ``monitor.should_stop`` is True.

Both take ``monitor=`` (a Monitor you built) or Monitor keyword arguments, and close the monitor
when training ends unless ``close_on_end=False``.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Optional

from tblive.doors.monitor import Monitor

__all__ = ["LightningCallback", "SB3Callback"]  # noqa: F822 (built lazily by __getattr__)

_BUILT: Dict[str, type] = {}


def _import_first(names: Any, install: str) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("this tblive callback needs %s (pip install %s)" % (install, install))


def _monitor_from(monitor: Optional[Monitor], options: Dict[str, Any]) -> Monitor:
    if monitor is not None:
        if options:
            raise TypeError("pass either monitor= or Monitor options, not both")
        return monitor
    return Monitor(**options)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    if isinstance(value, (int, float)):
        return True
    return type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0


def _build_sb3() -> type:
    callbacks = _import_first(["stable_baselines3.common.callbacks"], "stable-baselines3")
    sb3_logger = _import_first(["stable_baselines3.common.logger"], "stable-baselines3")

    class _MonitorFormat(sb3_logger.KVWriter):  # type: ignore[misc,name-defined]
        """An SB3 logger output that forwards the scalars TensorBoard would get."""

        def __init__(self, monitor: Monitor) -> None:
            self.monitor = monitor

        def write(self, key_values: Any, key_excluded: Any, step: int = 0) -> None:
            values = {}
            for key, value in key_values.items():
                excluded = key_excluded.get(key)
                if excluded is not None and "tensorboard" in excluded:
                    continue
                if _is_scalar(value):
                    values[key] = value
            if values:
                self.monitor.log(step, values)

        def close(self) -> None:
            return None

    class SB3Callback(callbacks.BaseCallback):  # type: ignore[misc,name-defined]
        """Feeds SB3's logged scalars to a tblive Monitor; stops training on ``should_stop``."""

        def __init__(
            self,
            monitor: Optional[Monitor] = None,
            close_on_end: bool = True,
            verbose: int = 0,
            **monitor_options: Any,
        ) -> None:
            super().__init__(verbose)
            self.monitor = _monitor_from(monitor, monitor_options)
            self.close_on_end = close_on_end
            self._format: Optional[_MonitorFormat] = None

        def _on_training_start(self) -> None:
            self._format = _MonitorFormat(self.monitor)
            self.model.logger.output_formats.append(self._format)
            if self.monitor.run_name is None:
                folder = getattr(self.model.logger, "dir", None)
                if folder:
                    self.monitor.run_name = str(folder).rstrip("/").split("/")[-1]

        def _on_step(self) -> bool:
            return not self.monitor.should_stop

        def _on_training_end(self) -> None:
            formats = self.model.logger.output_formats
            if self._format is not None and self._format in formats:
                formats.remove(self._format)
            if self.close_on_end:
                self.monitor.close()

    return SB3Callback


def _build_lightning() -> type:
    pl = _import_first(["lightning.pytorch", "pytorch_lightning"], "lightning")

    class LightningCallback(pl.Callback):  # type: ignore[misc,name-defined]
        """Feeds Lightning's logged metrics to a tblive Monitor; stops on ``should_stop``."""

        def __init__(
            self,
            monitor: Optional[Monitor] = None,
            close_on_end: bool = True,
            **monitor_options: Any,
        ) -> None:
            super().__init__()
            self.monitor = _monitor_from(monitor, monitor_options)
            self.close_on_end = close_on_end
            self._wrapped: list = []

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            for logger in getattr(trainer, "loggers", []) or []:
                experiment = None
                if type(logger).__name__ == "TensorBoardLogger":
                    experiment = logger.experiment
                if experiment is not None and hasattr(experiment, "add_scalar"):
                    self.monitor.attach(experiment)
                elif logger not in self._wrapped:
                    self._wrap_log_metrics(logger)

        def _wrap_log_metrics(self, logger: Any) -> None:
            original = logger.log_metrics
            monitor = self.monitor

            def log_metrics(metrics: Any, step: Optional[int] = None) -> Any:
                result = original(metrics, step)
                monitor.log(0 if step is None else step, metrics)
                return result

            logger.log_metrics = log_metrics
            self._wrapped.append(logger)

        def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
            if self.monitor.should_stop:
                trainer.should_stop = True

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if self.monitor.should_stop:
                trainer.should_stop = True

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            for logger in self._wrapped:
                try:
                    del logger.log_metrics
                except AttributeError:
                    pass
            self._wrapped = []
            if self.close_on_end:
                self.monitor.close()

    return LightningCallback


_BUILDERS = {"SB3Callback": _build_sb3, "LightningCallback": _build_lightning}


def __getattr__(name: str) -> Any:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError("module 'tblive.doors.integrations' has no attribute %r" % name)
    if name not in _BUILT:
        _BUILT[name] = builder()
    return _BUILT[name]
