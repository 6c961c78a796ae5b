"""The request guard: body size limit, one log line and the request metrics for every request.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, so that it can wrap `receive` (to count body
bytes as they arrive) and does not buffer responses.
"""

from __future__ import annotations

import logging
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmcli.deploy.metrics import Metrics

log = logging.getLogger("mmcli.serve")


class BodyTooLarge(Exception):
    """The body grew past the limit while being read (HTTP 413)."""


def error_body(field: str, reason: str, row: int | None = None) -> dict:
    """The one error shape every 4xx/5xx answer has: {"error": {"field", "reason"[, "row"]}}."""
    err = {"field": field, "reason": reason}
    if row is not None:
        err["row"] = row
    return {"error": err}


class RequestGuard:
    """Refuses bodies over `max_body_bytes` (by Content-Length up front, and by counting while reading, for chunked
    or lying clients), then logs `METHOD PATH STATUS MS rows=N` and counts the request in `metrics`.

    `paths` are the routes counted by name; anything else is counted as "other", so that scanners probing random
    URLs cannot grow the metrics without bound. Handlers report rows through `request.state.rows`.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: Metrics, paths: set[str]):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_status)
            else:
                await self.app(scope, self._counting(receive), send_status)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        """A response for a request refused by its headers alone (Content-Length over the limit or not a number)."""
        length = dict(scope["headers"]).get(b"content-length")
        if length is None:
            return None
        try:
            declared = int(length)
        except ValueError:
            return JSONResponse(error_body("body", "Content-Length is not a number"), status_code=400)
        if declared > self.max_body_bytes:
            return JSONResponse(error_body("body", f"body of {declared} bytes; the limit is {self.max_body_bytes}"),
                                status_code=413)
        return None

    def _counting(self, receive: Receive) -> Receive:
        """`receive` that raises BodyTooLarge once more than max_body_bytes have arrived."""
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(f"body over the limit of {self.max_body_bytes} bytes")
            return message

        return counted

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        path = scope["path"] if scope["path"] in self.paths else "other"
        rows = scope.get("state", {}).get("rows", 0)
        log.info("%s %s %d %.1fms rows=%d", scope["method"], scope["path"], status, seconds * 1000, rows)
        self.metrics.request(scope["method"], path, status, seconds)
