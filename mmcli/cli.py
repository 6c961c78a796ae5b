"""The `mm` command line. Each command parses its arguments and calls one library function.

Nothing heavy is imported at module level, so `mm --help` answers without loading torch.
"""

from __future__ import annotations

import functools
import gc
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="mm",
    help="Train, evaluate and serve multimodal (image + text) classifiers from a manifest (CSV, TSV, JSONL, JSON, "
    "Parquet) or a class-per-folder image tree.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (see `mm config`).")]
PresetOpt = Annotated[str | None, typer.Option("--preset", help="Starting config: fast (scratch models), pretrained "
                                               "(frozen pretrained encoders) or best (see `mm list`). Default: "
                                               "pretrained when installed, else fast; none with --config.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key, e.g. --set train.lr=3e-4 (repeatable)."),
]
LabelOpt = Annotated[str | None, typer.Option("--label", help="Name of the label column (default: label).")]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder (default: ~/.cache/mmcli/...).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="How to read the data: csv, tsv, jsonl, json, "
                                               "parquet or folder (default: by extension; a folder is a "
                                               "class-per-folder image tree).")]
DataArg = "Manifest: CSV, TSV, JSONL, JSON (a list of records) or Parquet, or a folder with one sub-folder per class."


# What `pip install 'mmcli[train]'` adds to the torch-free runtime install.
TRAINING_MODULES = ("torch", "torchvision", "transformers", "safetensors", "sklearn", "matplotlib")


def handle_errors(fn: Callable) -> Callable:
    """Turn MMError into a one-line message and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mmcli.errors import MMError

        try:
            return fn(*args, **kwargs)
        except MMError as exc:
            from rich.markup import escape

            from mmcli.progress import console

            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            code = 130 if str(exc).startswith("interrupted") else exc.exit_code
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except ModuleNotFoundError as exc:  # the runtime-only install (no torch) asked to train or evaluate
            if (exc.name or "").split(".")[0] not in TRAINING_MODULES:
                raise
            from mmcli.progress import console

            console.print(f"[red]error:[/red] this command needs {exc.name}, part of the training install: "
                          "pip install 'mmcli\\[train]' (an ONNX bundle predicts and serves without it)",
                          soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # the environment failed us (disk, permissions): say what, without a traceback
            from mmcli.progress import console

            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            console.print(f"[red]error:[/red] {exc.strerror or exc}{where}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _config(config: Path | None, overrides: list[str] | None, label: str | None, preset: str | None = None,
            auto: bool = False, say: bool = True, fmt: str | None = None):
    """The resolved config. `auto`: zero-config commands (train, preprocess) pick a preset when none is named
    and no --config is given (mmcli/presets.py), and say which in one line. `fmt`: the manifest's format."""
    from mmcli.config import load_config

    sets = list(overrides or [])
    if label:
        sets.append(f"data.label={label}")
    if fmt:
        sets.append(f"data.format={fmt}")
    if auto or preset:
        from mmcli.presets import choose, describe

        preset = choose(preset, config is not None)
        if preset and say and os.environ.get("RANK", "0") == "0":
            from mmcli.progress import info

            info(describe(preset) + ("" if preset != "pretrained" else "; --preset fast for the scratch models"))
    return load_config(config, sets, preset=preset)


@app.command()
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
    cfg = _config(config, set_, label, preset, auto=True, fmt=fmt)
    from mmcli.preprocess import preprocess as run_preprocess

    summary = run_preprocess(csv, cfg, output, write_manifest)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))


@app.command()
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
    cfg = _config(config, sets, label, preset, auto=resume is None, say=not launching, fmt=fmt)
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


@app.command()
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
        cfg = _config(config, set_, label)  # config and space errors answer before optuna and torch load
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


@app.command("eval")
@handle_errors
def eval_(
    run: Annotated[Path, typer.Argument(help="Run folder, e.g. runs/latest.")],
    csv: Annotated[Path, typer.Argument(help=DataArg + " With labels to score.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for metrics.json + report.md "
                                                   "(default: the run folder).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Score only rows of this split (train/val/test).")]
    = None,
    ablate: Annotated[bool, typer.Option("--ablate", help="Also score with each modality hidden (the model's "
                                         "missing-input path) and by the inputs rows have.")] = False,
    fail_under: Annotated[list[str] | None, typer.Option("--fail-under", help="METRIC=THRESHOLD: exit 1 when the "
                                                            "metric is below it, e.g. accuracy=0.9 (repeatable).")]
    = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Score a trained run on a labelled CSV: metrics.json, report.md with plots, and a table
    (--json keys: docs/eval-json.md)."""
    from mmcli.errors import MMError
    from mmcli.evaluate import evaluate_run, gate_failures
    from mmcli.metrics import parse_gates
    from mmcli.runs import resolve_run

    gates = parse_gates(fail_under)
    metrics = evaluate_run(resolve_run(run), csv, split=split, out_dir=output, ablate=ablate, gates=gates,
                           fmt=fmt or "auto")
    if json_out:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        from mmcli.report import print_eval

        print_eval(metrics, title=f"{csv}")
    failed = gate_failures(metrics)
    if failed:
        raise MMError(failed)


@app.command()
@handle_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to put side by side.")],
    json_out: JsonOpt = False,
) -> None:
    """Key metrics (test split, else val; plus `mm eval` results) and differing config keys of several runs."""
    from mmcli.compare import compare_runs, print_compare

    result = compare_runs(runs)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_compare(result)


def _split_predict_args(args: list[str]) -> tuple[Path | None, list[str]]:
    """[RUN] then inputs: the first argument is the run when it is a folder with a config.yaml."""
    if args and Path(args[0]).is_dir() and (Path(args[0]) / "config.yaml").exists():
        return Path(args[0]), args[1:]
    if len(args) == 3:  # RUN IMAGE TEXT with a run folder that doesn't exist: say so rather than guess
        return Path(args[0]), args[1:]
    return None, args


@app.command()
@handle_errors
def predict(
    args: Annotated[list[str] | None, typer.Argument(help="[RUN|BUNDLE] IMAGE TEXT, or [RUN|BUNDLE] DATA for a batch (a CSV, TSV, "
                                                     "JSONL, JSON or Parquet manifest, or an image folder tree).")]
    = None,
    image: Annotated[str | None, typer.Option("--image", help="Image path (instead of a positional one).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Text (instead of a positional one).")] = None,
    inputs: Annotated[list[str] | None, typer.Option("--input", help="column=value for models with several "
                                                        "image/text columns (repeatable).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Batch mode: predictions CSV to write.")]
    = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many labels to show.")] = 5,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Top-k labels with probabilities for one input, or a predictions CSV for a whole manifest, from a run folder
    or (without torch) from an `mm export` bundle."""
    from mmcli.errors import UsageError

    run_arg, rest = _split_predict_args(list(args or []))
    if run_arg is not None and (run_arg / "bundle.json").is_file():  # an ONNX bundle: no torch import at all
        from mmcli.deploy.runtime import predict_csv, predict_one

        run = run_arg
    else:
        from mmcli.predict import predict_csv, predict_one
        from mmcli.runs import resolve_run

        run = resolve_run(run_arg)
    if len(rest) == 1 and (fmt or Path(rest[0]).is_dir() or rest[0].lower().endswith(_data_extensions())):
        if not Path(rest[0]).exists():  # else the path itself would be "predicted" as a text
            from mmcli.errors import DataError

            raise DataError(f"batch manifest not found: {rest[0]}")
        out = predict_csv(run, Path(rest[0]), output, fmt=fmt or "auto")
        typer.echo(json.dumps({"predictions": str(out)}) if json_out else str(out))
        return
    image, text = _positional_inputs(rest, image, text)
    extra = dict(_parse_pair(p) for p in inputs or [])
    if image is None and text is None and not extra:
        raise UsageError("nothing to predict: give IMAGE and/or TEXT, --image/--text, or a CSV")
    top = predict_one(run, image, text, extra, top_k)
    if json_out:
        typer.echo(json.dumps({"run": str(run), "predictions": top}, indent=2))
        return
    from rich.table import Table

    from mmcli.progress import console

    table = Table(title=f"prediction ({run.name})")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for p in top:
        table.add_row(p["label"], f"{p['probability']:.4f}")
    console.print(table)
    typer.echo(top[0]["label"])


def _data_extensions() -> tuple[str, ...]:
    from mmcli.data.formats import EXTENSIONS

    return tuple(EXTENSIONS)


def _parse_pair(text: str) -> tuple[str, str]:
    from mmcli.errors import UsageError

    if "=" not in text:
        raise UsageError(f"--input expects column=value, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v


def _positional_inputs(rest: list[str], image: str | None, text: str | None) -> tuple[str | None, str | None]:
    """Positional inputs: an existing file or a name with an image extension is the image; the rest is text."""
    from mmcli.data.manifest import IMAGE_EXTENSIONS
    from mmcli.errors import UsageError

    for value in rest:
        if image is None and (Path(value).is_file() or value.lower().endswith(IMAGE_EXTENSIONS)):
            image = value
        elif text is None:
            text = value
        else:
            raise UsageError(f"too many inputs: {rest!r}; expected [RUN] IMAGE TEXT")
    return image, text


@app.command("export")
@handle_errors
def export_cmd(
    run: Annotated[Path | None, typer.Argument(help="Run folder to export (default runs/latest).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Bundle folder to write (default "
                                                "RUN/bundle).")] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Rows for the parity check (default: the run's "
                                               "validation rows).")] = None,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Most rows the parity check uses.")] = 64,
    quantize: Annotated[bool, typer.Option("--quantize", help="Also write an int8 dynamically quantised model "
                                           "(then the bundle's default) with its own accuracy report.")] = False,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0, help="Largest max |p_torch - p_onnx| "
                                             "accepted (exit 1 above).")] = 1e-4,
    json_out: JsonOpt = False,
) -> None:
    """Export a run to a self-contained ONNX bundle (graph, preprocessing, labels, sha256 manifest) that
    `mm predict` and `mm serve` run without torch; checks torch/onnxruntime parity on real rows."""
    from mmcli.runs import resolve_run

    try:
        from mmcli.deploy.export import export_bundle
    except ModuleNotFoundError as exc:
        if exc.name not in ("onnx", "onnxscript", "onnxruntime"):
            raise
        from mmcli.errors import MMError

        raise MMError("mm export needs onnx, onnxscript and onnxruntime: pip install 'mmcli[export]'") from None
    meta = export_bundle(resolve_run(run), output, check, rows, quantize, tolerance)
    if json_out:
        typer.echo(json.dumps(meta, indent=2))
        return
    _print_export(meta)


def _print_export(meta: dict) -> None:
    from rich.table import Table

    from mmcli.progress import console

    p = meta["parity"]
    table = Table(title=f"bundle {meta['run']} -> {meta['model']}")
    for col in ("check", "rows", "max |dp|", "argmax agreement"):
        table.add_column(col, justify="right" if col != "check" else "left")
    table.add_row("fp32 batch N", str(p["rows"]), f"{p['max_abs_diff_batch_n']:.2e}", f"{p['argmax_agreement']:.4f}")
    table.add_row("fp32 batch 1", str(p["rows_at_batch_1"]), f"{p['max_abs_diff_batch_1']:.2e}", "")
    q = meta.get("quantized")
    if q:
        acc = f" (accuracy {q['accuracy_fp32']:.4f} -> {q['accuracy_int8']:.4f})" if "accuracy_int8" in q else ""
        table.add_row(f"int8{acc}", str(q["rows"]), f"{q['max_abs_diff']:.2e}", f"{q['argmax_agreement']:.4f}")
    console.print(table)
    typer.echo(f"parity {'passed' if p['passed'] else 'FAILED'} (tolerance {p['tolerance']:.0e})")


@app.command("serve")
@handle_errors
def serve_cmd(
    path: Annotated[Path, typer.Argument(help="Run folder or ONNX bundle to serve.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port, logged at "
                                      "start).")] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Most rows per model call (1: no "
                                           "batching).")] = 32,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, help="How long a batch waits for more rows, "
                                               "from its first row (0: no batching).")] = 5.0,
    queue_size: Annotated[int | None, typer.Option("--queue-size", min=1, help="Rows that may wait before requests "
                                                   "get 503 + Retry-After (default 512).")] = None,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001, help="Largest request body in MiB (413 "
                                               "above).")] = 16.0,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels in each answer's top_k list.")] = 5,
) -> None:
    """Serve predictions over HTTP with micro-batching: POST /predict, /predict/batch; GET /health/live,
    /health/ready, /info, /metrics. SIGTERM drains open requests and exits 0."""
    from mmcli.errors import MMError

    try:
        from mmcli.deploy.serve import serve
    except ModuleNotFoundError as exc:
        if exc.name not in ("fastapi", "uvicorn", "starlette", "multipart", "python_multipart"):
            raise
        raise MMError("mm serve needs FastAPI and uvicorn: pip install 'mmcli[serve]'") from None
    from mmcli.deploy.loader import load_predictor

    serve(load_predictor(path), host, port, max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size,
          max_body_bytes=int(max_body_mb * 1024 * 1024), top_k=top_k)


@app.command("list")
def list_components() -> None:
    """List the presets, the input kinds, each kind's encoders and the fusions."""
    import mmcli.models  # noqa: F401  (fills the registries)
    from mmcli import modalities
    from mmcli.models.registry import ENCODERS, FUSIONS
    from mmcli.presets import PRESETS

    typer.echo("presets (--preset):")
    for name, (_, doc) in PRESETS.items():
        typer.echo(f"  {name:<16} {doc}")
    typer.echo(f"input kinds (data.inputs, inferred in this order): {', '.join(modalities.KIND_ORDER)}")
    for reg in [*(ENCODERS[k] for k in modalities.KIND_ORDER if k in ENCODERS), FUSIONS]:
        typer.echo(f"{reg.kind}s:")
        for name in reg.names():
            typer.echo(f"  {name:<16} {reg.doc(name)}")


@app.command("config")
@handle_errors
def show_config(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    keys: Annotated[bool, typer.Option("--keys", help="List every key with its default and help.")] = False,
    preset: PresetOpt = None,
) -> None:
    """Print the resolved config as YAML (defaults <- --preset <- --config <- --set)."""
    from mmcli.config import describe_keys, dump_config

    if keys:
        for key, default, help_text in describe_keys():
            typer.echo(f"{key:<26} {default:<14} {help_text}")
        return
    typer.echo(dump_config(_config(config, set_, None, preset)), nl=False)


def main() -> None:
    """Console entry point: run the app, then make the interpreter's exit cheap.

    Finalising the objects of torch, torchvision and friends at exit costs about 1 s on 2 cores; frozen objects are
    skipped by the final collections (files are already closed and atomically renamed by then). Freed tensor memory
    stays with the process for the next batch (mmcli/allocator.py: a 2-4x faster CNN on a CPU).
    """
    from mmcli import allocator

    allocator.keep_freed_memory()
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
