"""The search space of `mm tune`: YAML in Ludwig's form, one entry per config key.

    train.lr: {space: loguniform, lower: 1.0e-4, upper: 1.0e-2}
    model.fusion: {space: choice, categories: [concat, late, gated]}
    model.hidden_dim: {space: int, lower: 64, upper: 512, step: 64}
    model.dropout: {space: uniform, lower: 0.0, upper: 0.5}

The entries may also sit under a top-level `parameters:` key (as in Ludwig's hyperopt section). Every key and every
bound or category is checked against the config schema when the file is read, so a typo exits 2 before any trial
runs. No optuna or torch import here: the CLI reads the space before loading either.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmcli.config import Config, load_config
from mmcli.errors import UsageError

SPACES = ("choice", "int", "uniform", "loguniform")
ALIASES = {"randint": "int", "categorical": "choice", "float": "uniform", "log_uniform": "loguniform"}


@dataclass(frozen=True)
class Param:
    """One searched config key: a choice among `categories`, or a range [lower, upper] (int: by `step`)."""

    key: str
    space: str
    lower: float | None = None
    upper: float | None = None
    step: float | None = None
    categories: tuple | None = None

    def suggest(self, trial) -> Any:
        """The value an Optuna trial picks for this key (the parameter is named by the key)."""
        if self.space == "choice":
            return trial.suggest_categorical(self.key, list(self.categories))
        if self.space == "int":
            return trial.suggest_int(self.key, int(self.lower), int(self.upper), step=int(self.step or 1))
        return trial.suggest_float(self.key, self.lower, self.upper, log=self.space == "loguniform",
                                   step=self.step if self.space == "uniform" else None)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
                if v is not None and k != "key"}


def _field_type(key: str) -> Any:
    """The annotated type of config key `section.name`; a UsageError naming the key when there is none."""
    parts = key.split(".")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if len(parts) != 2 or parts[0] not in sections:
        raise UsageError(f"unknown config key '{key}' in the search space; keys look like section.name with section "
                         f"one of {', '.join(sections)} (see `mm config --keys`)")
    section_cls = sections[parts[0]].default_factory  # type: ignore[misc]
    hints = typing.get_type_hints(section_cls)
    if parts[1] not in hints:
        raise UsageError(f"unknown config key '{key}' in the search space; valid keys of '{parts[0]}': "
                         f"{', '.join(f.name for f in dataclasses.fields(section_cls))}")
    return hints[parts[1]]


def _check_value(key: str, value: Any) -> Any:
    """The value as the config reads it (3e-4 as a float); a UsageError naming the key when the config refuses it."""
    section, name = key.split(".")
    cfg = load_config(base={section: {name: value}})
    return getattr(getattr(cfg, section), name)


def _number(key: str, entry: dict, bound: str) -> float:
    if bound not in entry:
        raise UsageError(f"search space '{key}': space {entry['space']} needs '{bound}'")
    return _check_value(key, entry[bound])


def parse_param(key: str, entry: Any) -> Param:
    """One entry of the space file -> Param, checked against the config schema."""
    tp = _field_type(key)
    if not isinstance(entry, dict) or "space" not in entry:
        raise UsageError(f"search space '{key}': expected a mapping with 'space' ({', '.join(SPACES)}), got {entry!r}")
    space = ALIASES.get(str(entry["space"]), str(entry["space"]))
    if space not in SPACES:
        raise UsageError(f"search space '{key}': space '{entry['space']}' is not one of {', '.join(SPACES)}")
    entry = {**entry, "space": space}
    unknown = set(entry) - {"space", "lower", "upper", "step", "categories"}
    if unknown:
        raise UsageError(f"search space '{key}': unknown field(s) {', '.join(sorted(unknown))}; expected lower, "
                         "upper, step (int and uniform) or categories (choice)")
    if space == "choice":
        cats = entry.get("categories")
        if not isinstance(cats, list) or not cats:
            raise UsageError(f"search space '{key}': choice needs a non-empty list 'categories'")
        if any(isinstance(c, (list, dict)) for c in cats):
            raise UsageError(f"search space '{key}': categories must be single values (text, numbers, booleans)")
        return Param(key, space, categories=tuple(_check_value(key, c) for c in cats))
    if space == "int" and tp is not int:
        raise UsageError(f"search space '{key}': space int needs an integer key; '{key}' is {tp}")
    if space in ("uniform", "loguniform") and tp is not float:
        hint = " (use space: int)" if tp is int else ""
        raise UsageError(f"search space '{key}': space {space} needs a number key; '{key}' is {tp}{hint}")
    lower, upper = _number(key, entry, "lower"), _number(key, entry, "upper")
    if not lower < upper:
        raise UsageError(f"search space '{key}': lower ({lower}) must be below upper ({upper})")
    if space == "loguniform" and lower <= 0:
        raise UsageError(f"search space '{key}': loguniform needs lower > 0, got {lower}")
    step = entry.get("step")
    if step is not None and (space == "loguniform" or not isinstance(step, (int, float)) or step <= 0):
        raise UsageError(f"search space '{key}': step must be a positive number (int and uniform spaces only)")
    return Param(key, space, lower, upper, step)


def parse_space(data: Any, source: str = "the search space") -> list[Param]:
    """A mapping {key: entry} (optionally under `parameters:`) -> [Param], in file order."""
    if isinstance(data, dict) and set(data) == {"parameters"}:
        data = data["parameters"]
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{source}: expected a mapping of config keys to spaces, e.g. "
                         "train.lr: {space: loguniform, lower: 1.0e-4, upper: 1.0e-2}")
    try:
        return [parse_param(str(key), entry) for key, entry in data.items()]
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None


def load_space(path: Path) -> list[Param]:
    """Read and check a space file (exit 2 with the key named on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"search space file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"search space {path} is not valid YAML: {exc}") from None
    return parse_space(data, str(path))


def space_to_dict(params: list[Param]) -> dict:
    return {p.key: p.to_dict() for p in params}


def base_params(base: dict, params: list[Param]) -> tuple[dict, list[str]]:
    """The base config's values of the searched keys, for trial 0. -> (params, keys left to the sampler): a choice
    whose categories lack the base value cannot hold it, so that key is sampled instead."""
    values, sampled = {}, []
    for p in params:
        section, name = p.key.split(".")
        value = base[section][name]
        if p.space == "choice" and value not in p.categories:
            sampled.append(p.key)
        else:
            values[p.key] = value
    return values, sampled


def apply_params(base: dict, values: dict) -> dict:
    """A copy of the nested config dict `base` with {"section.name": value} set."""
    out = copy.deepcopy(base)
    for key, value in values.items():
        section, name = key.split(".")
        out[section][name] = value
    return out
