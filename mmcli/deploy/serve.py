"""`mm serve`: an HTTP prediction server (FastAPI on uvicorn) with micro-batching, over any `Predictor`.

Endpoints:
  GET  /health/live     200 while the process serves
  GET  /health/ready    503 until the predictor's warm_up has run, then 200
  GET  /info            inputs and kinds, labels, version, batching settings and limits
  GET  /metrics         Prometheus text: requests by path and status, latency, batch sizes, queue depth
  POST /predict         one row: multipart form (a field per column; image/audio as file parts) or JSON
                        {"inputs": {column: value}} (image/audio base64) -> {"label", "probabilities", "top_k"}
  POST /predict/batch   JSON {"rows": [{column: value}, ...]} -> {"predictions": [...]} in row order. A bad row
                        fails the whole request (4xx whose error names "row" and "field"), so a client never has
                        to match partial results to rows.
Errors are {"error": {"field", "reason"}}: 400 undecodable (bad base64, bad JSON, bad image), 413 body or image too
large, 415 wrong content type, 422 unknown column or no inputs, 500 the model call failed (only that batch's
requests), 503 queue full or shutting down (with Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from mmcli.deploy import inputs as body
from mmcli.deploy.batching import BatchFailed, Closed, MicroBatcher, QueueFull
from mmcli.deploy.metrics import CONTENT_TYPE, Metrics
from mmcli.deploy.middleware import BodyTooLarge, RequestGuard, error_body
from mmcli.deploy.predictor import InputError, Predictor
from mmcli.errors import UsageError

log = logging.getLogger("mmcli.serve")
PATHS = {"/health/live", "/health/ready", "/info", "/metrics", "/predict", "/predict/batch"}


@dataclass(frozen=True)
class Settings:
    """Server settings as /info reports them. max_batch=1 or max_wait_ms=0: no batching."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    queue_size: int = 512
    max_body_bytes: int = 16 * 1024 * 1024
    top_k: int = 5

    def check(self) -> None:
        for name in ("max_batch", "queue_size", "max_body_bytes", "top_k"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise UsageError(f"max_wait_ms must be 0 or more, got {self.max_wait_ms}")


class ServerState:
    """The predictor, its batcher (started with the app, drained when it stops), readiness and metrics."""

    def __init__(self, predictor: Predictor, settings: Settings):
        self.predictor = predictor
        self.settings = settings
        self.kinds = {i["name"]: i["kind"] for i in predictor.inputs}
        self.ready = False
        self.warm_up_error: str | None = None
        self.batcher: MicroBatcher | None = None
        self.metrics = Metrics({
            "mm_queue_depth": ("Rows waiting for a model call.", lambda: self.batcher.depth if self.batcher else 0),
            "mm_batch_rows_running": ("Rows in the model call now.", lambda: self.batcher.running if self.batcher
                                      else 0),
            "mm_ready": ("1 once warm-up has run.", lambda: int(self.ready)),
        })

    def start(self) -> None:
        s = self.settings
        self.batcher = MicroBatcher(self.predictor.run, s.max_batch, s.max_wait_ms, s.queue_size,
                                    on_batch=self.metrics.batch, startup=self._warm_up)

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close(drain=True)

    def _warm_up(self) -> None:
        # on the batcher's thread: the model is only ever called from that one thread
        try:
            self.predictor.warm_up()
        except Exception as exc:  # not ready, and /health/ready says why; the batcher logs the traceback
            self.warm_up_error = f"{type(exc).__name__}: {exc}"
            raise
        self.ready = True
        log.info("ready: %s", self.predictor.version)

    def _prepare(self, rows: list[dict], indexed: bool) -> list[object]:
        prepared = []
        for i, row in enumerate(rows):
            try:
                prepared.append(self.predictor.prepare(row))
            except InputError as exc:
                exc.row = i if indexed else None
                raise
        return prepared

    async def answer(self, rows: list[dict], indexed: bool = False) -> list[dict]:
        """Prepare the rows on a worker thread (a bad row fails here, before any batch), queue them, and wait for
        their answers; top_k is cut to the server's setting. indexed: errors name the row (batch requests)."""
        prepared = await run_in_threadpool(self._prepare, rows, indexed)
        futures = self.batcher.submit(prepared)
        answers = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        return [{**a, "top_k": list(a.get("top_k", []))[: self.settings.top_k]} for a in answers]

    def info(self) -> dict:
        s = self.settings
        batching = {"enabled": s.max_batch > 1 and s.max_wait_ms > 0, "max_batch": s.max_batch,
                    "max_wait_ms": s.max_wait_ms, "queue_size": s.queue_size}
        return {"version": self.predictor.version, "inputs": [dict(i) for i in self.predictor.inputs],
                "labels": list(self.predictor.labels), "batching": batching, "top_k": s.top_k,
                "limits": {"max_body_bytes": s.max_body_bytes, "max_rows_per_request": s.queue_size}}


def create_app(predictor: Predictor, max_batch: int = 32, max_wait_ms: float = 5.0, queue_size: int | None = None,
               max_body_bytes: int | None = None, top_k: int = 5) -> FastAPI:
    """The FastAPI app serving `predictor`. queue_size: rows that may wait (default 512, at least max_batch);
    max_body_bytes: default 16 MiB. The batcher starts with the app's lifespan and is drained at shutdown."""
    settings = Settings(max_batch, max_wait_ms, queue_size or max(512, max_batch),
                        max_body_bytes or Settings.max_body_bytes, top_k)
    settings.check()
    state = ServerState(predictor, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state.start()
        try:
            yield
        finally:  # uvicorn has stopped accepting and waited for open requests; answer anything still queued
            await run_in_threadpool(state.stop)

    app = FastAPI(title="mm serve", version=str(predictor.version), lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.mm = state
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes, metrics=state.metrics, paths=PATHS)
    _add_routes(app, state)
    _add_error_handlers(app)
    return app


def _add_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health/live")
    async def live() -> dict:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        if state.ready:
            return JSONResponse({"status": "ready"})
        if state.warm_up_error:
            return JSONResponse({"status": "warm-up failed", "reason": state.warm_up_error}, status_code=503)
        return JSONResponse({"status": "warming up"}, status_code=503)

    @app.get("/info")
    async def info() -> dict:
        return state.info()

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        if body.body_kind(request, body.JSON_TYPES + body.FORM_TYPES) in body.JSON_TYPES:
            obj = await body.read_json(request)
            if not isinstance(obj, dict) or "inputs" not in obj:
                raise InputError(422, "inputs", 'expected {"inputs": {column: value}}')
            row = body.row_from_json(obj["inputs"], state.kinds)
        else:
            row = await body.row_from_form(request, state.kinds, state.settings.max_body_bytes)
        request.state.rows = 1
        return (await state.answer([row]))[0]

    @app.post("/predict/batch")
    async def predict_batch(request: Request) -> dict:
        body.body_kind(request, body.JSON_TYPES)
        rows = body.rows_from_batch(await body.read_json(request), state.kinds, state.settings.queue_size)
        request.state.rows = len(rows)
        return {"predictions": await state.answer(rows, indexed=True)}


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers {"error": {"field", "reason"}} with its status; 503s say when to retry."""

    def reply(status: int, field: str, reason: str, row: int | None = None, headers: dict | None = None):
        return JSONResponse(error_body(field, reason, row), status_code=status, headers=headers)

    async def input_error(_req, exc: InputError):
        return reply(exc.status, exc.field, exc.reason, exc.row)

    async def too_large(_req, exc: BodyTooLarge):
        return reply(413, "body", str(exc))

    async def busy(_req, exc: QueueFull | Closed):
        return reply(503, "body", str(exc), headers={"Retry-After": str(getattr(exc, "retry_after_s", 1))})

    async def failed(_req, exc: BatchFailed):
        return reply(500, "model", f"the model call for this request's batch failed ({exc})")

    async def http_error(_req, exc: HTTPException):  # 404, 405, and multipart syntax errors (400)
        field = "path" if exc.status_code in (404, 405) else "body"
        return reply(exc.status_code, field, str(exc.detail), headers=exc.headers)

    async def crashed(_req, exc: Exception):
        log.error("unhandled %s: %s", type(exc).__name__, exc)
        return reply(500, "body", "internal error")

    for cls, handler in ((InputError, input_error), (BodyTooLarge, too_large), (QueueFull, busy), (Closed, busy),
                         (BatchFailed, failed), (HTTPException, http_error), (Exception, crashed)):
        app.add_exception_handler(cls, handler)


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, *, max_batch: int = 32,
          max_wait_ms: float = 5.0, queue_size: int | None = None, max_body_bytes: int | None = None, top_k: int = 5,
          log_level: str = "info", graceful_timeout_s: int = 30) -> None:
    """Serve `predictor` until SIGTERM or Ctrl-C. port=0 picks a free port; the log line `listening on
    http://HOST:PORT` gives it. On SIGTERM: stop accepting, answer every open request and queued row (at most
    `graceful_timeout_s` seconds), then return normally, so the process exits 0."""
    import uvicorn

    app = create_app(predictor, max_batch, max_wait_ms, queue_size, max_body_bytes, top_k)
    _configure_logging(log_level)
    sock = bind_socket(host, port)
    s = app.state.mm.settings
    log.info("listening on http://%s:%d (%s; max_batch %d, max_wait %g ms, queue %d rows)", host,
             sock.getsockname()[1], predictor.version, s.max_batch, s.max_wait_ms, s.queue_size)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=graceful_timeout_s)
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it shut down on once it has finished, through the handler that was there
    # before it; the default SIGTERM handler would then kill the process (exit -15) after a clean shutdown. A
    # handler that does nothing makes a requested, completed shutdown exit 0.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: None) if in_main else None
    try:
        server.run(sockets=[sock])
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound here so that port 0's real port can be logged before serving.

    Created with proto=IPPROTO_TCP on purpose: asyncio turns Nagle's algorithm off only for sockets that say so,
    and with it on, every response after the first on a keep-alive connection waits ~40 ms for a delayed ACK
    (headers and body are two writes). socket.create_server() gives proto 0.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _configure_logging(level: str) -> None:
    """Request lines (logger mmcli.serve) on stderr, unless the embedding program has set up logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mmcli.serve").setLevel(level.upper())
