"""Strict merging of nested mappings (YAML, a preset, `--set`) onto the config dataclasses of `mmcli.config`: each
value checked against its field's annotated type and choices, unknown keys named with the valid ones."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from mmcli.errors import UsageError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _as_float(value: Any) -> float | None:
    """A number, or a string that spells one: PyYAML reads `3e-4` (no dot) as the string '3e-4'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotated type `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except UsageError:
                pass
        raise UsageError(f"config key '{key}': expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise UsageError(f"config key '{key}': expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise UsageError(f"config key '{key}': expected a mapping, got {value!r}")
        return {_coerce(key, k, kt): _coerce(f"{key}.{k}", v, vt) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        number = _as_float(value)
        if number is not None:
            if not math.isfinite(number):
                raise UsageError(f"config key '{key}': expected a finite number, got {value!r}")
            return number
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise UsageError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")


def merge(obj: Any, updates: dict, prefix: str = "") -> None:
    """Apply a nested dict of updates onto a dataclass instance, strictly."""
    if not isinstance(updates, dict):
        raise UsageError(f"config section '{prefix.rstrip('.') or 'root'}' must be a mapping, got {updates!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for name, value in updates.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise UsageError(f"unknown config key '{key}'; valid keys here: {', '.join(fields)}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            merge(current, value, prefix=f"{key}.")
            continue
        value = _coerce(key, value, hints[name])
        choices = fields[name].metadata.get("choices")
        if choices and value not in choices:
            raise UsageError(f"config key '{key}': {value!r} is not one of {', '.join(map(str, choices))}")
        setattr(obj, name, value)
