"""Hooks on a SummaryWriter (tensorboardX or torch): every scalar it writes also goes to an intake.

Contract
--------
* :func:`hook` replaces the writer's ``add_scalar`` / ``add_scalars`` with wrappers (instance
  attributes; the class is untouched): the original method runs first, with the caller's
  arguments, and its result or exception is passed through unchanged; then the value goes to
  the :class:`~tblive.doors.intake.Intake` (which never raises).  :meth:`Hook.restore` puts
  back exactly what the instance had before.  A writer carries its owner in
  ``_tblive_monitor``: hooking it again for the same owner is not done twice, for another
  owner it raises ValueError.
* **Series names** are the ones tblive's reader gives the writer's event files
  (:func:`tblive.read.runs.series_name`): ``add_scalar(tag)`` -> ``tag``; tensorboardX
  ``add_scalars(main, {key: v})`` writes folder ``main/key`` and torch folder ``main_key``
  (``/`` -> ``_``), so HARL's ``add_scalars(k, {k: v})`` is the series ``k`` and
  ``add_scalars("loss", {"train": v})`` is ``loss/train`` (:class:`GroupNames`).
* :func:`writer_logdir` is the writer's log directory (None when it has none we can see).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from tblive.doors.intake import Intake
from tblive.read.runs import series_name

__all__ = ["GroupNames", "Hook", "hook", "is_torch_writer", "writer_logdir"]

#: the attribute naming a hooked writer's owner
OWNER = "_tblive_monitor"

_MISSING = object()


def is_torch_writer(writer: Any) -> bool:
    """Whether ``writer`` is torch's SummaryWriter (or a subclass): its ``add_scalars`` layout."""
    return any(
        getattr(cls, "__module__", "").startswith("torch.utils.tensorboard")
        for cls in type(writer).__mro__
    )


def writer_logdir(writer: Any) -> Optional[str]:
    """The directory ``writer`` writes its event files to, or None; never raises."""
    method = getattr(writer, "get_logdir", None)
    if callable(method):
        try:
            return str(method())
        except Exception:
            pass
    for name in ("log_dir", "logdir"):
        value = getattr(writer, name, None)
        if isinstance(value, str):
            return value
    return None


class GroupNames:
    """``(main_tag, key)`` -> series name for one writer's ``add_scalars`` (cached)."""

    def __init__(self, torch_layout: bool) -> None:
        self.torch_layout = torch_layout
        self._known: Dict[str, Dict[str, str]] = {}

    def __call__(self, main_tag: str, key: str) -> str:
        known = self._known.get(main_tag)
        if known is None:
            known = self._known[main_tag] = {}
        name = known.get(key)
        if name is None:
            if self.torch_layout:
                folder = main_tag.replace("/", "_") + "_" + key
            else:
                folder = main_tag + "/" + key
            name = known[key] = series_name(folder, main_tag)
        return name


class Hook:
    """One hooked writer and what to restore on :meth:`restore`."""

    def __init__(self, writer: Any, saved: Dict[str, Any]) -> None:
        self.writer = writer
        self.saved = saved  # attribute -> previous instance attribute (or _MISSING)

    def restore(self) -> None:
        """Give the writer back its own methods (and forget its owner)."""
        for name, previous in self.saved.items():
            try:
                if previous is _MISSING:
                    delattr(self.writer, name)
                else:
                    setattr(self.writer, name, previous)
            except AttributeError:
                pass


def hook(writer: Any, intake: Intake, owner: Any = None) -> Optional[Hook]:
    """Wrap ``writer.add_scalar`` / ``add_scalars`` so every value also reaches ``intake``.

    ``owner`` (default: ``intake``) is recorded on the writer.  Returns the :class:`Hook`, or
    None when the writer is already hooked for ``owner``; raises ValueError when it is hooked
    for another owner.
    """
    owner = intake if owner is None else owner
    current = getattr(writer, OWNER, None)
    if current is owner:
        return None
    if current is not None:
        raise ValueError("this writer is already attached to another tblive Monitor")
    names = GroupNames(is_torch_writer(writer))
    original_scalar = writer.add_scalar
    original_scalars = getattr(writer, "add_scalars", None)
    log_scalar = intake.log_scalar
    log_group = intake._log_group

    def add_scalar(tag, scalar_value, global_step=None, walltime=None, *args, **kwargs):
        result = original_scalar(tag, scalar_value, global_step, walltime, *args, **kwargs)
        log_scalar(tag, scalar_value, global_step, walltime)
        return result

    def add_scalars(main_tag, tag_scalar_dict, global_step=None, walltime=None, *args, **kw):
        result = original_scalars(main_tag, tag_scalar_dict, global_step, walltime, *args, **kw)
        log_group(names, main_tag, tag_scalar_dict, global_step, walltime)
        return result

    add_scalar.__doc__ = getattr(original_scalar, "__doc__", None)
    add_scalars.__doc__ = getattr(original_scalars, "__doc__", None)
    state = vars(writer)
    replacements: Dict[str, Any] = {"add_scalar": add_scalar, OWNER: owner}
    if original_scalars is not None:
        replacements["add_scalars"] = add_scalars
    saved = {name: state.get(name, _MISSING) for name in replacements}
    for name, value in replacements.items():
        setattr(writer, name, value)
    return Hook(writer, saved)
