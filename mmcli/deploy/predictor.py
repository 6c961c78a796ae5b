"""The contract between the prediction server and a model: any object with these attributes and methods serves.

The server never sees tensors or run folders. Run-folder and ONNX-bundle predictors implement this protocol elsewhere
and plug in through `mmcli.deploy.loader.load_predictor`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

KINDS = ("image", "text", "numeric", "categorical", "audio")
BINARY_KINDS = ("image", "audio")  # sent as file parts (multipart) or base64 strings (JSON); never as a path


class InputError(Exception):
    """A client's fault in one request row: answered with `status` and `{"error": {"field", "reason"}}`.

    status: 400 (undecodable), 413 (too large, e.g. too many pixels), 415 (unsupported format) or 422 (unknown
    column, no inputs). field: the column name, or "body" for the request as a whole. The server sets `row` to the
    row's index in a batch request.
    """

    row: int | None = None

    def __init__(self, status: int, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason


@runtime_checkable
class Predictor(Protocol):
    """A loaded model as the server needs it.

    inputs: [{"name": column, "kind": "image" | "text" | "numeric" | "categorical" | "audio"}], the model's columns.
    labels: class names in index order.
    version: what is being served, e.g. the run folder or bundle name plus a hash of its weights.
    """

    inputs: list[dict]
    labels: list[str]
    version: str

    def prepare(self, row: dict[str, bytes | str]) -> object:
        """One request row ({column: bytes for image/audio, str otherwise}) -> a prepared row (decoded image array,
        token ids ...). Raises InputError naming the field: undecodable image 400/415, too many pixels 413, unknown
        column 422, no input at all 422. Runs in the request's worker thread, so that one bad row never reaches a
        batch."""
        ...

    def run(self, prepared: list[object]) -> list[dict]:
        """One model call for a batch of prepared rows -> per row, in order: {"label": str, "probabilities":
        {label: p}, "top_k": [{"label": str, "probability": p}, ...] (most likely first)}."""
        ...

    def warm_up(self) -> None:
        """Make the first real request fast (load weights, run a dummy batch); the server is ready after it."""
        ...
