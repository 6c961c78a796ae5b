"""The `mm` command line. Each command parses its arguments and calls one library function.

Nothing heavy is imported at module level, so `mm --help` answers without loading torch.
"""

from __future__ import annotations

import gc

import typer

from mmcli.commands import deploy, evaluate, info, predict, training

app = typer.Typer(
    name="mm",
    help="Train, evaluate and serve multimodal (image + text) classifiers from a manifest (CSV, TSV, JSONL, JSON, "
    "Parquet) or a class-per-folder image tree.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


# In the order `mm --help` lists them.
app.command("preprocess")(training.preprocess)
app.command("train")(training.train)
app.command("tune")(training.tune)
app.command("eval")(evaluate.eval_)
app.command("compare")(evaluate.compare)
app.command("predict")(predict.predict)
app.command("export")(deploy.export_cmd)
app.command("serve")(deploy.serve_cmd)
app.command("list")(info.list_components)
app.command("config")(info.show_config)


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
