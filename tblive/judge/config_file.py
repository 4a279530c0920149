"""Reading a TOML config file into a :class:`~tblive.judge.config.Config`.

Contract: :func:`load_config` reads a TOML file on top of the defaults; :func:`config_from_dict`
does the same for already-parsed data. Unknown keys and bad values raise
:class:`~tblive.errors.ConfigError` with one line naming the file and the key. The layout
(every key optional; see docs/configuration.md)::

    [grace]             min_points, fraction, expected_steps, min_steps
    [checks.<check>]    thresholds (see tblive.judge.config); ``enabled = false`` disables
    [patterns]          <role> = ["glob", "re:regex", "!excluded"]   (added to the defaults)
                        replace = ["<role>", ...]                     (those roles: only these)
    disabled = ["Entropy", ...]                                       (check display names)

Patterns given for a role *extend* its defaults: they are tried before them (for the main
reward they take priority), and the defaults stay. A role listed in ``[patterns] replace``
uses only the patterns given in the file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Union

from tblive.errors import ConfigError
from tblive.judge.config import DEFAULT_THRESHOLDS, THRESHOLD_TYPES, Config, threshold_docs
from tblive.judge.roles import DEFAULT_PATTERNS, ROLE_NAMES
from tblive.judge.rules import CHECK_NAMES

__all__ = ["ConfigError", "config_from_dict", "load_config"]

_GRACE_KEYS = ("min_points", "fraction", "expected_steps", "min_steps")

Fail = Callable[[str, str], ConfigError]


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib  # novermin

        return tomllib
    import tomli  # type: ignore[import-not-found]

    return tomli


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_config(path: Union[str, Path]) -> Config:
    """Read a TOML config over the defaults (layout in the module docstring)."""
    path = Path(path)
    where = str(path)
    try:
        with path.open("rb") as handle:
            data = _toml_module().load(handle)
    except OSError as exc:
        raise ConfigError("%s: cannot read config: %s" % (where, exc.strerror or exc)) from None
    except Exception as exc:  # tomllib.TOMLDecodeError and friends
        raise ConfigError("%s: invalid TOML: %s" % (where, exc)) from None
    return config_from_dict(data, where)


def config_from_dict(data: Dict[str, Any], where: str = "<config>") -> Config:
    """Build a :class:`Config` from already-parsed TOML data (see :func:`load_config`)."""
    config = Config.default()
    config.source = where

    def fail(key: str, what: str) -> ConfigError:
        return ConfigError("%s: %s: %s" % (where, key, what))

    for key, value in data.items():
        if key == "grace":
            _read_grace(config, value, fail)
        elif key == "checks":
            _read_checks(config, value, fail)
        elif key == "patterns":
            _read_patterns(config, value, fail)
        elif key == "disabled":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail("disabled", "expected a list of check names")
            known = {n.lower(): n for n in CHECK_NAMES.values()}
            for name in value:
                display = known.get(name.strip().lower())
                if display is None:
                    raise fail(
                        "disabled",
                        "unknown check %r (known: %s)" % (name, ", ".join(CHECK_NAMES.values())),
                    )
                if display not in config.disabled:
                    config.disabled.append(display)
        else:
            raise fail(key, "unknown key (known: grace, checks, patterns, disabled)")
    return config


def _read_grace(config: Config, value: Any, fail: Fail) -> None:
    if not isinstance(value, dict):
        raise fail("grace", "expected a table")
    for name, item in value.items():
        full = "grace.%s" % name
        if name not in _GRACE_KEYS:
            raise fail(full, "unknown key (known: %s)" % ", ".join(_GRACE_KEYS))
        if not _is_number(item) or item != item or item < 0:
            raise fail(full, "expected a non-negative number, got %r" % (item,))
        if name == "fraction" and item > 1:
            raise fail(full, "expected a share between 0 and 1, got %r" % (item,))
        if name != "fraction":
            if item != int(item):
                raise fail(full, "expected a whole number, got %r" % (item,))
            item = int(item)
        setattr(config.grace, name, item)


def _read_checks(config: Config, value: Any, fail: Fail) -> None:
    if not isinstance(value, dict):
        raise fail("checks", "expected a table")
    known = list(CHECK_NAMES) + [k for k in THRESHOLD_TYPES if k not in CHECK_NAMES]
    for check, table in value.items():
        if check not in known:
            raise fail("checks.%s" % check, "unknown check (known: %s)" % ", ".join(known))
        if not isinstance(table, dict):
            raise fail("checks.%s" % check, "expected a table")
        declared = threshold_docs(check)
        for name, item in table.items():
            full = "checks.%s.%s" % (check, name)
            if name == "enabled":
                if not isinstance(item, bool):
                    raise fail(full, "expected true or false, got %r" % (item,))
                display = CHECK_NAMES.get(check, check)
                if not item and display not in config.disabled:
                    config.disabled.append(display)
                continue
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise fail(full, "unknown key (known: %s, enabled)" % known)
            if not _is_number(item) or item != item or item < 0:
                raise fail(full, "expected a non-negative number, got %r" % (item,))
            if declared[name][2] and item > 1:
                raise fail(full, "expected a share between 0 and 1, got %r" % (item,))
            config.thresholds.setdefault(check, dict(DEFAULT_THRESHOLDS[check]))[name] = float(item)


def _read_patterns(config: Config, value: Any, fail: Fail) -> None:
    if not isinstance(value, dict):
        raise fail("patterns", "expected a table")
    replace = value.get("replace", [])
    if isinstance(replace, str):
        replace = [replace]
    if not isinstance(replace, list) or not all(isinstance(r, str) for r in replace):
        raise fail("patterns.replace", "expected a list of role names")
    for role in replace:
        _check_role(role, "patterns.replace", fail)
        if role not in value:
            raise fail("patterns.replace", "role %r is replaced but given no patterns" % role)
    for role, patterns in value.items():
        if role == "replace":
            continue
        if role == "extend":
            # the earlier spelling of "extend": [patterns.extend] <role> = [...]
            if not isinstance(patterns, dict):
                raise fail("patterns.extend", "expected a table")
            for extra_role, extra in patterns.items():
                full = "patterns.extend.%s" % extra_role
                _check_role(extra_role, full, fail)
                given = _pattern_list(extra, full, fail)
                config.patterns[extra_role] = given + [
                    p for p in config.patterns[extra_role] if p not in given
                ]
            continue
        full = "patterns.%s" % role
        _check_role(role, full, fail)
        given = _pattern_list(patterns, full, fail)
        if role in replace:
            config.patterns[role] = given
        else:
            # given first: for the main reward the user's patterns take priority
            config.patterns[role] = given + [p for p in config.patterns[role] if p not in given]


def _check_role(role: str, full: str, fail: Fail) -> None:
    if role not in DEFAULT_PATTERNS:
        raise fail(full, "unknown metric role %r (known: %s)" % (role, ", ".join(ROLE_NAMES)))


def _pattern_list(value: Any, full: str, fail: Fail) -> List[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fail(full, "expected a list of non-empty pattern strings")
    for pattern in value:
        body = pattern[1:] if pattern.startswith("!") else pattern
        if body.startswith("re:"):
            try:
                re.compile(body[3:])
            except re.error as exc:
                raise fail(full, "bad regular expression %r: %s" % (body[3:], exc)) from None
    return list(value)
