"""What a tune is, saved as DIR/tune.yaml: `mm tune --resume DIR` reads it back and goes on with the same study."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from mmcli.errors import UsageError
from mmcli.files import atomic_write_text

METRICS = {"val_accuracy": "max", "val_macro_f1": "max", "val_loss": "min"}
SAMPLERS = ("tpe", "random", "qmc", "gp")
PRUNERS = ("median", "hyperband", "none")
SETTINGS_FILE = "tune.yaml"


def metric_key(metric: str) -> str:
    """val_accuracy -> accuracy: the key of the metric in metrics.json's "val" section."""
    return metric.removeprefix("val_")


@dataclass
class TuneSettings:
    csv: str  # absolute path of the manifest
    space: dict  # {key: {space, lower, upper, step | categories}}
    base: dict  # the resolved base config (defaults <- --config <- --set), nested
    trials: int = 20  # stop once this many trials have finished (completed or pruned)
    metric: str = "val_accuracy"
    goal: str = "max"
    sampler: str = "tpe"
    pruner: str = "median"
    startup_trials: int = 5  # completed trials before the median pruner prunes
    warmup_epochs: int = 2  # epochs every trial runs before it may be pruned
    seed: int = 0
    keep: int = 3  # run folders kept: those of the best `keep` completed trials
    storage: str | None = None  # an RDB URL; None: a journal file in the tune folder
    study_name: str = "mm-tune"
    cache_dir: str | None = None

    def check(self) -> None:
        choices = (("metric", self.metric, tuple(METRICS)), ("goal", self.goal, ("max", "min")),
                   ("sampler", self.sampler, SAMPLERS), ("pruner", self.pruner, PRUNERS))
        for name, value, allowed in choices:
            if value not in allowed:
                raise UsageError(f"--{name} {value!r} is not one of {', '.join(allowed)}")
        for name in ("trials", "keep", "startup_trials"):
            if getattr(self, name) < (0 if name == "startup_trials" else 1):
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.warmup_epochs < 0:
            raise UsageError(f"--warmup-epochs must be at least 0, got {self.warmup_epochs}")

    @property
    def direction(self) -> str:
        return "maximize" if self.goal == "max" else "minimize"


def save_settings(out: Path, settings: TuneSettings) -> None:
    atomic_write_text(out / SETTINGS_FILE, yaml.safe_dump(dataclasses.asdict(settings), sort_keys=False))


def load_settings(out: Path) -> TuneSettings:
    path = Path(out) / SETTINGS_FILE
    if not path.is_file():
        raise UsageError(f"{out} holds no tune to resume (no {SETTINGS_FILE}); start one with mm tune data.csv "
                         f"--space space.yaml -o {out}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    names = {f.name for f in dataclasses.fields(TuneSettings)}
    if not isinstance(data, dict) or not {"csv", "space", "base"} <= set(data) or set(data) - names:
        raise UsageError(f"{path} is not a tune settings file written by mm tune")
    return TuneSettings(**data)
