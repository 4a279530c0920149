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

Distributed training: only the process of **global rank 0** monitors (one set of alerts per
run, not one per GPU).  The rank is :func:`global_rank`: torch.distributed's when it is
initialised, else the launcher's environment (``RANK``, ``OMPI_COMM_WORLD_RANK``,
``PMI_RANK``, ``SLURM_PROCID``); Lightning's ``trainer.global_rank`` overrides it in
``setup``.  On the other ranks ``callback.monitor`` is None and nothing is alerted or written.
With ``stop_on``, Lightning ranks agree on stopping through the strategy's
``reduce_boolean_decision`` (at every epoch end and every ``sync_every`` batches).

Checkpoints: both callbacks have ``state_dict()`` / ``load_state_dict()`` holding what was
alerted (:meth:`~tblive.doors.monitor.Monitor.state_dict`).  Lightning saves and restores it
with the checkpoint by itself; for SB3 (whose ``model.save`` has no callbacks) pass
``state_file=PATH`` to keep it in a JSON file next to your checkpoints (loaded at the start of
training, written atomically after each rollout that changed it and at the end), or save
``callback.state_dict()`` yourself.  A resumed run therefore does not re-alert what it
already said.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from typing import Any, Dict, Mapping, Optional

from tblive.doors.monitor import Monitor

__all__ = ["LightningCallback", "SB3Callback", "global_rank"]  # noqa: F822 (built lazily)

logger = logging.getLogger(__name__)

#: environment variables launchers set to the process's global rank, in order of trust
RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID")

_BUILT: Dict[str, type] = {}


def _import_first(names: Any, install: str) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("this tblive callback needs %s (pip install %s)" % (install, install))


def global_rank(environ: Optional[Mapping[str, str]] = None) -> int:
    """This process's global rank in distributed training (0 when not distributed).

    torch.distributed's rank when it is imported and initialised (torch is never imported
    here), else the first of :data:`RANK_VARIABLES` that holds an integer, else 0.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and environ is None:
        try:
            if distributed.is_available() and distributed.is_initialized():
                return int(distributed.get_rank())
        except Exception:
            pass
    env = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        value = env.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def _monitor_from(
    monitor: Optional[Monitor], options: Dict[str, Any], rank: int
) -> Optional[Monitor]:
    """The callback's monitor: the given one, a new one on rank 0, None on other ranks."""
    if monitor is not None:
        if options:
            raise TypeError("pass either monitor= or Monitor options, not both")
        if rank != 0:
            monitor.close(announce=False)
            return None
        return monitor
    return Monitor(**options) if rank == 0 else None


class _RankZero:
    """What both callbacks share: the monitor of global rank 0 and the alert state."""

    monitor: Optional[Monitor]
    _options: Dict[str, Any]
    _pending_state: Optional[Dict[str, Any]]

    def _init_monitor(self, monitor: Optional[Monitor], options: Dict[str, Any]) -> None:
        self._options = dict(options)
        self._pending_state = None
        self.monitor = _monitor_from(monitor, options, global_rank())

    def _settle_rank(self, rank: int) -> None:
        """The framework knows the rank for sure now: keep, drop or create the monitor."""
        if rank != 0 and self.monitor is not None:
            self.monitor.close(announce=False)
            self.monitor = None
        elif rank == 0 and self.monitor is None:
            self.monitor = Monitor(**self._options)
        if self.monitor is not None and self._pending_state is not None:
            self.monitor.load_state_dict(self._pending_state)
            self._pending_state = None

    @property
    def should_stop(self) -> bool:
        return self.monitor is not None and self.monitor.should_stop

    def state_dict(self) -> Dict[str, Any]:
        """What was alerted (rank 0), for the checkpoint; ``{}`` on other ranks."""
        return self.monitor.state_dict() if self.monitor is not None else {}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore what was alerted from a checkpoint (kept until the monitor exists)."""
        if not state_dict:
            return
        if self.monitor is not None:
            self.monitor.load_state_dict(state_dict)
        else:
            self._pending_state = dict(state_dict)

    def __getstate__(self) -> Dict[str, Any]:
        # a monitor (threads, locks) does not cross a process boundary (ddp_spawn pickles
        # the callbacks): the spawned rank 0 builds its own in setup
        state = dict(self.__dict__)
        if state.get("monitor") is not None:
            state["_pending_state"] = state["monitor"].state_dict()
        state["monitor"] = None
        return state


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

    class SB3Callback(_RankZero, callbacks.BaseCallback):  # type: ignore[misc,name-defined]
        """Feeds SB3's logged scalars to a tblive Monitor (global rank 0 only); stops training
        on ``should_stop``; ``state_file`` keeps the alert state across restarts."""

        def __init__(
            self,
            monitor: Optional[Monitor] = None,
            close_on_end: bool = True,
            verbose: int = 0,
            state_file: Optional[str] = None,
            **monitor_options: Any,
        ) -> None:
            callbacks.BaseCallback.__init__(self, verbose)
            self._init_monitor(monitor, monitor_options)
            self.close_on_end = close_on_end
            self.state_file = state_file
            self._saved: Optional[Dict[str, Any]] = None
            self._format: Optional[_MonitorFormat] = None

        def _on_training_start(self) -> None:
            self._settle_rank(global_rank())
            if self.monitor is None:
                return
            self._load_state_file()
            self._format = _MonitorFormat(self.monitor)
            self.model.logger.output_formats.append(self._format)
            if self.monitor.run_name is None:
                folder = getattr(self.model.logger, "dir", None)
                if folder:
                    self.monitor.run_name = str(folder).rstrip("/").split("/")[-1]

        def _on_step(self) -> bool:
            return not self.should_stop

        def _on_rollout_end(self) -> None:
            self._save_state_file()

        def _on_training_end(self) -> None:
            if self.monitor is None:
                return
            formats = self.model.logger.output_formats
            if self._format is not None and self._format in formats:
                formats.remove(self._format)
            if self.close_on_end:
                self.monitor.close()
            self._save_state_file()

        def _load_state_file(self) -> None:
            if not self.state_file or not os.path.exists(self.state_file):
                return
            try:
                with open(self.state_file, encoding="utf-8") as handle:
                    self.load_state_dict(json.load(handle))
            except (OSError, ValueError) as error:
                logger.warning(
                    "tblive: cannot read the alert state %s (%s); starting clean",
                    self.state_file,
                    error,
                )

        def _save_state_file(self) -> None:
            if not self.state_file or self.monitor is None:
                return
            state = self.state_dict()
            if state == self._saved:
                return
            try:
                from tblive.atomic import write_atomically

                write_atomically(self.state_file, json.dumps(state, indent=1) + "\n")
                self._saved = state
            except (OSError, TypeError, ValueError) as error:
                logger.warning(
                    "tblive: cannot write the alert state %s: %s", self.state_file, error
                )

    return SB3Callback


def _build_lightning() -> type:
    pl = _import_first(["lightning.pytorch", "pytorch_lightning"], "lightning")

    class LightningCallback(_RankZero, pl.Callback):  # type: ignore[misc,name-defined]
        """Feeds Lightning's logged metrics to a tblive Monitor (global rank 0 only); stops on
        ``should_stop`` (all ranks agree); its alert state goes into the checkpoint."""

        def __init__(
            self,
            monitor: Optional[Monitor] = None,
            close_on_end: bool = True,
            sync_every: int = 50,
            **monitor_options: Any,
        ) -> None:
            pl.Callback.__init__(self)
            self._init_monitor(monitor, monitor_options)
            self.close_on_end = close_on_end
            self.sync_every = max(int(sync_every), 1)
            self._wrapped: list = []

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            self._settle_rank(int(getattr(trainer, "global_rank", 0) or 0))
            if self.monitor is None:
                return
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

        def _decide(self, trainer: Any) -> None:
            """Stop when rank 0's monitor says so; every rank calls this at the same points."""
            stop = self.should_stop
            if int(getattr(trainer, "world_size", 1) or 1) > 1:
                stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
            if stop:
                trainer.should_stop = True

        def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
            batch_idx = kwargs.get("batch_idx", args[-1] if args else 0)
            if int(getattr(trainer, "world_size", 1) or 1) == 1 or batch_idx % self.sync_every == 0:
                self._decide(trainer)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self._decide(trainer)

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            for logger in self._wrapped:
                try:
                    del logger.log_metrics
                except AttributeError:
                    pass
            self._wrapped = []
            if self.close_on_end and self.monitor is not None:
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
