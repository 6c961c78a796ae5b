"""What every `mm` command shares: option types, error handling, and the config they resolve."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

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


def resolve_config(config: Path | None, overrides: list[str] | None, label: str | None, preset: str | None = None,
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
