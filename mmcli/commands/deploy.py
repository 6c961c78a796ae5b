"""`mm export` and `mm serve`: a torch-free ONNX bundle, and an HTTP server for a run or a bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmcli.commands.common import JsonOpt, handle_errors


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
