"""Micro-batching: requests from many connections are gathered into one model call.

One worker thread owns the model: it takes the first queued row, waits at most `max_wait_ms` (timed from that first
row) for more, up to `max_batch` rows, calls `run` once and hands each answer to its row's future. Model calls are
therefore never concurrent, which is what torch and ONNX Runtime sessions want, and a burst of N requests costs
about N / max_batch model calls instead of N.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger("mmcli.serve")


class QueueFull(Exception):
    """The queue cannot take the rows now; the client should retry after `retry_after_s` seconds (HTTP 503)."""

    def __init__(self, depth: int, capacity: int, retry_after_s: int = 1):
        super().__init__(f"queue full ({depth} of {capacity} rows waiting)")
        self.retry_after_s = retry_after_s


class Closed(Exception):
    """The batcher is shutting down and takes no new rows (HTTP 503)."""


class BatchFailed(Exception):
    """`run` raised for the batch this row was in (HTTP 500); the batcher itself keeps going."""


class MicroBatcher:
    """A bounded queue of prepared rows and the worker thread that runs them in batches.

    run: prepared rows -> one answer per row (the predictor's `run`). max_batch=1 or max_wait_ms=0 turns batching
    off: every row is its own model call. on_batch(rows, seconds) is called after each model call (metrics).
    startup: called once on the worker thread before the first batch (warm-up, on the thread that owns the model).
    """

    def __init__(self, run: Callable[[list], list], max_batch: int = 32, max_wait_ms: float = 5.0,
                 queue_size: int = 1024, on_batch: Callable[[int, float], None] | None = None,
                 startup: Callable[[], None] | None = None):
        if max_batch < 1 or max_wait_ms < 0 or queue_size < 1:
            raise ValueError("max_batch >= 1, max_wait_ms >= 0 and queue_size >= 1 are required")
        self._run = run
        self.max_batch = 1 if max_wait_ms == 0 else max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._startup = startup
        self._items: deque[tuple[object, Future]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.running = 0  # rows inside the current model call
        self._thread = threading.Thread(target=self._work, name="mm-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Rows waiting in the queue (not counting the batch being run)."""
        return len(self._items)

    def submit(self, prepared: list[object]) -> list[Future]:
        """Queue rows, all or none (a batch request never half-enters) -> one future per row, in order."""
        futures = [Future() for _ in prepared]
        with self._cond:
            if self._closed:
                raise Closed("shutting down")
            if len(self._items) + len(prepared) > self.queue_size:
                raise QueueFull(len(self._items), self.queue_size)
            self._items.extend(zip(prepared, futures, strict=True))
            self._cond.notify()
        return futures

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking rows. drain=True: answer everything queued first; else fail the queued rows with Closed.
        Returns when the worker has stopped (or after `timeout` seconds)."""
        with self._cond:
            self._closed = True
            dropped = [] if drain else list(self._items)
            if not drain:
                self._items.clear()
            self._cond.notify_all()
        for _, fut in dropped:
            if fut.set_running_or_notify_cancel():
                fut.set_exception(Closed("shut down before this row ran"))
        self._thread.join(timeout)

    def _work(self) -> None:
        if self._startup is not None:
            try:
                self._startup()
            except Exception:  # a failed warm-up leaves the server not ready, but rows still get answers
                log.exception("warm-up failed")
        while (batch := self._next_batch()) is not None:
            self._run_batch(batch)

    def _next_batch(self) -> list[tuple[object, Future]] | None:
        """Block for the first row, then gather until max_batch rows or max_wait after that first row; None once
        closed and empty. Rows whose request was cancelled are dropped here."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            batch = [self._items.popleft()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                if self._items:
                    batch.append(self._items.popleft())
                    continue
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:  # when draining, nothing more will come: don't wait
                    break
                self._cond.wait(remaining)
            batch = [(p, f) for p, f in batch if f.set_running_or_notify_cancel()]
            self.running = len(batch)
            return batch

    def _run_batch(self, batch: list[tuple[object, Future]]) -> None:
        """One model call; its answers (or its failure) go to exactly this batch's futures. The batch is counted
        before any answer is handed back, so a client holding its answer also sees its batch in the metrics."""
        if not batch:
            return
        start = time.perf_counter()
        answers, error = None, None
        try:
            answers = self._run([p for p, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"run returned {len(answers)} answers for {len(batch)} rows")
        except Exception as exc:
            log.exception("model call failed for a batch of %d rows", len(batch))
            error = BatchFailed(f"{type(exc).__name__}: {exc}")
        self.running = 0
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - start)
        for i, (_, fut) in enumerate(batch):
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(answers[i])
