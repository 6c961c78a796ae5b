"""One trial of `mm tune`: the config it samples, a `mm train` run over it, and the per-epoch pruning check.

The trial calls the same `train` function as `mm train`, with the tune's shared cache folder: the frozen encoders'
tables there are keyed by data and encoder weights (mmcli/frozen.py), so every trial after the first over the same
encoders skips them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from mmcli.config import load_config
from mmcli.errors import DataError, MMError
from mmcli.tune.settings import TuneSettings, metric_key
from mmcli.tune.space import Param, apply_params

# Keys whose value changes what the cache folder holds (the split depends on the seed): trials that search one of
# them get a cache folder per setting, so that parallel trials never rebuild one another's.
CACHE_KEYS = ("data.", "train.seed")


@dataclass
class TrialContext:
    """What every trial of one worker shares."""

    settings: TuneSettings
    out: Path
    params: list[Param]
    threads: int = 0  # torch CPU threads per trial when the base config leaves train.threads at 0
    release: Callable[[], None] = field(default=lambda: None)  # called once the trial exists (see study._work)


def trial_dir(out: Path, number: int) -> Path:
    return out / "trials" / f"{number:04d}"


def cache_dir_for(settings: TuneSettings, cfg_dict: dict, params: list[Param]) -> Path | None:
    """The cache folder of a trial: the tune's one (default: mm train's for this CSV), or beside it one per data
    setting when the space searches keys that change the cache."""
    from mmcli.data.cache import default_cache_dir

    root = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir(Path(settings.csv))
    if not any(p.key.startswith(CACHE_KEYS) for p in params):
        return root
    blob = json.dumps([cfg_dict["data"], cfg_dict["train"]["seed"]], sort_keys=True).encode()
    return root.with_name(f"{root.name}-{hashlib.blake2b(blob, digest_size=6).hexdigest()}")


def pruning_callback(trial: optuna.Trial, metric: str) -> Callable[[int, dict], None]:
    """`on_epoch` for `train`: report the validation metric to Optuna each epoch; raise TrialPruned (which ends the
    training loop there) when the pruner says this trial is behind the others at the same epoch."""

    def on_epoch(epoch: int, row: dict) -> None:
        value = row.get(metric)
        if value is None:
            return
        trial.report(float(value), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} ({metric} {float(value):.4f})")

    return on_epoch


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the training run's own progress and tables: the tune shows one progress display."""
    old = os.environ.get("MM_QUIET")
    os.environ["MM_QUIET"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MM_QUIET", None)
        else:
            os.environ["MM_QUIET"] = old


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, MMError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def _train(trial: optuna.Trial, cfg_dict: dict, ctx: TrialContext) -> float:
    from mmcli.train import train

    cfg = load_config(base=cfg_dict)  # checks the combination (e.g. ranges) as mm train --config would
    if ctx.threads and not cfg.train.threads:
        cfg.train.threads = ctx.threads
    with _quiet():
        run = train(Path(ctx.settings.csv), cfg, output=trial_dir(ctx.out, trial.number),
                    cache_dir=cache_dir_for(ctx.settings, cfg_dict, ctx.params),
                    on_epoch=pruning_callback(trial, ctx.settings.metric))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    if "val" not in metrics:
        raise DataError(f"{ctx.settings.csv}: no validation rows, so trials cannot be compared (set a split column "
                        "with val rows, or data.val_fraction > 0)")
    key = metric_key(ctx.settings.metric)
    if "test" in metrics:  # shown beside the value, never used to choose (that is the validation metric's job)
        trial.set_user_attr("test_value", metrics["test"][key])
    return float(metrics["val"][key])


def run_trial(trial: optuna.Trial, ctx: TrialContext) -> float:
    """The objective: sample the searched keys, train, return the validation metric of the run's final model.

    A failure is recorded on the trial (user attribute `error`) and raised for Optuna to label the trial failed;
    Ctrl-C (mm train's own `Interrupted`) becomes KeyboardInterrupt, which ends the whole tune."""
    from mmcli.loop import Interrupted

    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    ctx.release()  # only now: a running trial without a pid is then one whose process died (see prepare_study)
    try:
        values = {p.key: p.suggest(trial) for p in ctx.params}
        return _train(trial, apply_params(ctx.settings.base, values), ctx)
    except optuna.TrialPruned:
        raise
    except Interrupted:
        trial.set_user_attr("error", "interrupted (Ctrl-C)")
        # queued again, so that `mm tune --resume` runs these values first instead of losing them
        trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                            "base": bool(trial.user_attrs.get("base"))})
        raise KeyboardInterrupt from None
    except Exception as exc:
        trial.set_user_attr("error", _describe(exc))
        raise
