"""`mm preprocess`, `mm train` and `mm tune`: build the cache, train a run, search a config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from mmcli.commands.common import (
    CacheOpt,
    ConfigOpt,
    DataArg,
    FormatOpt,
    JsonOpt,
    LabelOpt,
    PresetOpt,
    SetOpt,
    handle_errors,
    resolve_config,
)


@handle_errors
def preprocess(
    csv: Annotated[Path, typer.Argument(help=DataArg)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Cache folder to write.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    label: LabelOpt = None,
    fmt: FormatOpt = None,
    write_manifest: Annotated[Path | None, typer.Option("--write-manifest", help="Also write the rows as read "
                                                        "(e.g. inferred from a folder tree) to this CSV.")] = None,
    json_out: JsonOpt = False,
    preset: PresetOpt = None,
) -> None:
    """Validate every row and build the cache (decoded images, token ids, labels); list bad rows."""
    # before the torch import below: config errors answer at once
    cfg = resolve_config(config, set_, label, preset, auto=True, fmt=fmt)
    from mmcli.preprocess import preprocess as run_preprocess

    summary = run_preprocess(csv, cfg, output, write_manifest)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))


@handle_errors
def train(
    csv: Annotated[Path | None, typer.Argument(help=DataArg + " Optional with --resume.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder (default runs/<time>).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    label: LabelOpt = None,
    fmt: FormatOpt = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted run folder.")] = None,
    cache_dir: CacheOpt = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps "
                                                  "(train.device).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="32, bf16, fp16 or auto: bf16 where the hardware computes it natively (train.precision).")]
    = None,
    nproc: Annotated[int, typer.Option("--nproc-per-node", help="Processes per machine (one per GPU): launches "
                                       "through torch.distributed.run (torchrun).")] = 1,
    nnodes: Annotated[str, typer.Option("--nnodes", help="Number of machines (or MIN:MAX).")] = "1",
    node_rank: Annotated[int, typer.Option("--node-rank", help="This machine's rank among --nnodes.")] = 0,
    master_addr: Annotated[str, typer.Option("--master-addr", help="Address of the rank-0 machine.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option("--master-port", help="Free port on the rank-0 machine.")] = 29500,
    rdzv_endpoint: Annotated[str | None, typer.Option("--rdzv-endpoint", help="host:port of a c10d rendezvous "
                                                         "(instead of --master-addr/--node-rank).")] = None,
    preset: PresetOpt = None,
) -> None:
    """Train a model (zero-config: columns inferred, pretrained encoders when installed) and write a run folder;
    runs/latest points at it."""
    sets = list(set_ or []) + ([f"train.device={device}"] if device else []) + (
        [f"train.precision={precision}"] if precision else [])
    launching = nproc > 1 or nnodes != "1"
    # before the torch import below: config errors answer at once
    cfg = resolve_config(config, sets, label, preset, auto=resume is None, say=not launching, fmt=fmt)
    if launching:
        from mmcli.distributed import launch

        argv = ["train"] + ([str(csv)] if csv else []) + _pass_on(output=output, config=config, label=label,
                                                                   format=fmt, resume=resume, cache_dir=cache_dir,
                                                                   preset=preset)
        argv += [a for s in sets for a in ("--set", s)]
        launch(argv, nproc, nnodes, node_rank, master_addr, master_port, rdzv_endpoint)
        return
    from mmcli.train import train as run_train

    run = run_train(csv, cfg, output, resume, cache_dir)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(str(run))


def _pass_on(**options) -> list[str]:
    """Options given to the launcher, as arguments for each launched `mm train` process."""
    out = []
    for name, value in options.items():
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    return out


@handle_errors
def tune(
    csv: Annotated[Path | None, typer.Argument(help="CSV manifest (optional with --resume).")] = None,
    space: Annotated[Path | None, typer.Option("--space", help="Search space YAML: {config.key: {space: choice|int|"
                                                "uniform|loguniform, lower, upper | categories}}.")] = None,
    trials: Annotated[int | None, typer.Option("--trials", "-n", help="Stop once this many trials have finished "
                                               "(completed or pruned; default 20).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Start no new trial after this many "
                                                  "seconds.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Trials at once, in as many processes (CPU threads "
                                      "divided between them).")] = 1,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Tune folder (default runs/tune-<time>).")]
    = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    label: LabelOpt = None,
    metric: Annotated[str | None, typer.Option("--metric", help="val_accuracy (default: train.monitor), "
                                               "val_macro_f1 or val_loss.")] = None,
    goal: Annotated[str | None, typer.Option("--goal", help="max or min (default: the metric's).")] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="tpe (default), random, qmc or gp.")] = None,
    pruner: Annotated[str | None, typer.Option("--pruner", help="median (default), hyperband or none.")] = None,
    startup_trials: Annotated[int | None, typer.Option("--startup-trials", help="Median pruner: completed trials "
                                                       "before any is pruned (default 5).")] = None,
    warmup_epochs: Annotated[int | None, typer.Option("--warmup-epochs", help="Epochs every trial runs before it "
                                                      "may be pruned (default 2).")] = None,
    keep: Annotated[int | None, typer.Option("--keep", help="Run folders kept: the best K trials' (default 3).")]
    = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed (default 0).")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="Optuna RDB URL shared by machines, e.g. "
                                                "postgresql://user:pw@host/db (default: a journal file in the "
                                                "tune folder).")] = None,
    study_name: Annotated[str | None, typer.Option("--study-name", help="Study name in --storage (default "
                                                   "mm-tune).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the tune in this folder until its "
                                                "trials have finished.")] = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Search hyperparameters with Optuna: trial 0 is the base config, trials are pruned per epoch, and the folder
    gets trials.csv, best.yaml, report.md and the best trials' run folders."""
    params = cfg = None
    if resume is None:
        from mmcli.errors import UsageError
        from mmcli.tune.space import load_space

        if space is None:
            raise UsageError("mm tune needs --space space.yaml (or --resume DIR)")
        cfg = resolve_config(config, set_, label)  # config and space errors answer before optuna and torch load
        params = load_space(space)
    try:
        from mmcli.tune.run import tune as run_tune
    except ModuleNotFoundError as exc:
        if exc.name != "optuna":
            raise
        from mmcli.errors import MMError

        raise MMError("mm tune needs Optuna: pip install 'mmcli[tune]' (or pip install optuna)") from None
    out = run_tune(csv, params, cfg, output, resume, timeout=timeout, jobs=jobs, trials=trials, metric=metric,
                   goal=goal, sampler=sampler, pruner=pruner, storage=storage, study_name=study_name, keep=keep,
                   seed=seed, cache_dir=cache_dir, startup_trials=startup_trials, warmup_epochs=warmup_epochs)
    typer.echo(str(out))
