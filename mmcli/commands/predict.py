"""`mm predict`: one input or a whole manifest, from a run folder or an ONNX bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmcli.commands.common import FormatOpt, JsonOpt, handle_errors


def _split_predict_args(args: list[str]) -> tuple[Path | None, list[str]]:
    """[RUN] then inputs: the first argument is the run when it is a folder with a config.yaml."""
    if args and Path(args[0]).is_dir() and (Path(args[0]) / "config.yaml").exists():
        return Path(args[0]), args[1:]
    if len(args) == 3:  # RUN IMAGE TEXT with a run folder that doesn't exist: say so rather than guess
        return Path(args[0]), args[1:]
    return None, args


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
