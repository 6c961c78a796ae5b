"""`mm tune`: start a tune (or resume one), run its trials, and write the outputs.

    DIR/tune.yaml      what the tune is (CSV, space, base config, metric, sampler, pruner, ...): --resume reads it
    DIR/journal.log    the Optuna study (journal-file storage; absent with --storage URL)
    DIR/trials.csv     one row per trial: parameters, state, value, epochs, seconds (and the error of a failed one)
    DIR/best.yaml      the best trial's config, for `mm train --config best.yaml`
    DIR/trials/NNNN/   run folders of the best `keep` trials only
    DIR/report.md      best trial, optimisation history and parameter importance (PNGs beside it)
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from mmcli.config import Config
from mmcli.errors import DataError, MMError, UsageError
from mmcli.progress import info
from mmcli.tune.outputs import Progress, print_table, write_outputs
from mmcli.tune.report import write_report
from mmcli.tune.settings import METRICS, SETTINGS_FILE, TuneSettings, load_settings, save_settings
from mmcli.tune.space import Param, space_to_dict
from mmcli.tune.study import open_study, prepare_study, run_parallel, work

# Options of a new tune; --resume takes them from DIR/tune.yaml instead.
NEW_ONLY = ("metric", "goal", "sampler", "pruner", "storage", "study_name", "keep", "seed", "cache_dir",
            "startup_trials", "warmup_epochs")


def new_settings(csv: Path, params: list[Param], cfg: Config, options: dict) -> TuneSettings:
    """Settings of a new tune: the metric defaults to the base config's train.monitor, the goal to the metric's
    direction; every trial early-stops and keeps its best epoch by that metric."""
    if not Path(csv).is_file():
        raise DataError(f"CSV manifest not found: {csv}")
    metric = options.get("metric") or cfg.train.monitor
    if metric not in METRICS:
        raise UsageError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
    cfg.train.monitor = metric
    given = {k: v for k, v in options.items() if v is not None and k in NEW_ONLY}
    settings = TuneSettings(csv=str(Path(csv).resolve()), space=space_to_dict(params), base=cfg.to_dict(),
                            **{**given, "metric": metric, "goal": options.get("goal") or METRICS[metric]})
    if options.get("trials") is not None:
        settings.trials = options["trials"]
    if settings.cache_dir:
        settings.cache_dir = str(Path(settings.cache_dir).resolve())
    settings.check()
    return settings


def new_tune_dir(output: Path | None) -> Path:
    out = Path(output) if output is not None else Path("runs") / time.strftime("tune-%Y%m%d-%H%M%S")
    if (out / SETTINGS_FILE).exists():
        raise UsageError(f"{out} already holds a tune; continue it with mm tune --resume {out}, or pick another -o")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _resumed(resume: Path, csv: Path | None, options: dict) -> tuple[Path, TuneSettings]:
    given = [k for k in NEW_ONLY if options.get(k) is not None]
    if given:
        raise UsageError(f"--resume takes the tune's settings from {resume / SETTINGS_FILE}; only --trials, --timeout "
                         f"and --jobs may change (got {', '.join('--' + k.replace('_', '-') for k in given)})")
    settings = load_settings(resume)
    if csv is not None and str(Path(csv).resolve()) != settings.csv:
        raise UsageError(f"the tune in {resume} is on {settings.csv}, not {csv}; leave the CSV out with --resume")
    if options.get("trials") is not None:
        settings.trials = options["trials"]
        settings.check()
        save_settings(resume, settings)
    return Path(resume), settings


def tune(csv: Path | None, params: list[Param] | None, cfg: Config | None, output: Path | None = None,
         resume: Path | None = None, timeout: float | None = None, jobs: int = 1, **options) -> Path:
    """Run (or resume) a tune; returns its folder. `options`: trials, metric, goal, sampler, pruner, storage,
    study_name, keep, seed, cache_dir, startup_trials, warmup_epochs (None: the default)."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if resume is not None:
        out, settings = _resumed(Path(resume), csv, options)
    else:
        if csv is None or params is None or cfg is None:
            raise UsageError("mm tune needs a CSV manifest and --space (or --resume DIR)")
        settings = new_settings(csv, params, cfg, options)
        out = new_tune_dir(output)
        save_settings(out, settings)
    study = open_study(settings, out)
    prepare_study(study, settings, out)
    deadline = time.time() + timeout if timeout else math.inf
    info(f"tune {out}: {settings.trials} trials of {', '.join(settings.space)} on {settings.csv}; "
         f"{settings.metric} ({settings.goal}); sampler {settings.sampler}, pruner {settings.pruner}"
         + (f", {jobs} processes" if jobs > 1 else ""))
    with Progress(study, settings) as progress:

        seen: list = []

        def on_trial(s) -> None:  # after each trial, or each second while parallel workers run
            states = [t.state for t in s.get_trials(deepcopy=False)]
            if states != seen:
                seen[:] = states
                progress.update(s)
                write_outputs(s, settings, out)

        try:
            if jobs > 1:
                run_parallel(study, settings, out, deadline, jobs, on_trial)
            else:
                work(study, settings, out, deadline, on_trial=on_trial)
        except KeyboardInterrupt:
            write_outputs(study, settings, out)
            raise MMError(f"interrupted; the finished trials are kept. Resume with: mm tune --resume {out}") from None
    best = write_outputs(study, settings, out)
    write_report(study, settings, out)
    print_table(study, settings, out)
    if best is None:
        raise MMError(f"no trial completed; see {out / 'trials.csv'} for the errors")
    return out
