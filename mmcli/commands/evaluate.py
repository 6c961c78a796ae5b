"""`mm eval` and `mm compare`: score a run on labelled data, put runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmcli.commands.common import DataArg, FormatOpt, JsonOpt, handle_errors


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
