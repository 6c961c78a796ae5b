"""Path -> Predictor for `mm serve PATH`.

A bundle is served by the torch-free runtime (mmcli/deploy/runtime.py), a run folder by its torch model
(mmcli/deploy/run_predictor.py); the server itself only knows the Predictor protocol (mmcli/deploy/predictor.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmcli.deploy.predictor import Predictor
from mmcli.errors import UsageError


def _is_bundle(path: Path) -> bool:
    return path.is_dir() and (path / "bundle.json").is_file()


def _is_run(path: Path) -> bool:
    return path.is_dir() and (path / "model.safetensors").is_file() and (path / "config.yaml").is_file()


def _load_bundle(path: Path) -> Predictor:
    from mmcli.deploy.runtime import Bundle

    return Bundle(path)


def _load_run(path: Path) -> Predictor:
    from mmcli.deploy.run_predictor import RunPredictor
    from mmcli.runs import resolve_run

    return RunPredictor(resolve_run(path))


# (what it serves, does it handle this path?, load it), tried in order
LOADERS: list[tuple[str, Callable[[Path], bool], Callable[[Path], Predictor]]] = [
    ("ONNX bundle (mm export)", _is_bundle, _load_bundle),
    ("run folder (mm train)", _is_run, _load_run),
]


def load_predictor(path: Path | str) -> Predictor:
    """The predictor for a run folder or bundle at `path`; UsageError (exit 2) when no loader handles it."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: not found (expected a run folder or an ONNX bundle)")
    for _name, handles, load in LOADERS:
        if handles(path):
            return load(path)
    known = ", ".join(name for name, _, _ in LOADERS) or "none yet"
    raise UsageError(f"{path}: neither a finished run folder nor an ONNX bundle (loaders: {known})")
