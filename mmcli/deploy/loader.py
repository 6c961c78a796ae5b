"""Path -> Predictor for `mm serve PATH`.

The loaders for a run folder and for an ONNX bundle are written with the model side and register here; the server
itself only knows the Predictor protocol (mmcli/deploy/predictor.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmcli.deploy.predictor import Predictor
from mmcli.errors import UsageError

# (what it serves, does it handle this path?, load it), tried in order
LOADERS: list[tuple[str, Callable[[Path], bool], Callable[[Path], Predictor]]] = []


def load_predictor(path: Path | str) -> Predictor:
    """The predictor for a run folder or bundle at `path`; UsageError (exit 2) when no loader handles it."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: not found (expected a run folder or an ONNX bundle)")
    for _name, handles, load in LOADERS:
        if handles(path):
            return load(path)
    known = ", ".join(name for name, _, _ in LOADERS) or "none yet"
    raise UsageError(f"{path}: serving is not implemented for this path yet (loaders: {known})")
