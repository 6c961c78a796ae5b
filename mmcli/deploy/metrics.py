"""Server metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

Hand-written because the format is small and stable and prometheus_client would be one more dependency. Updates
come from the event loop (requests) and from the batcher thread (batches), hence the lock.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus expects them."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)  # per bucket, not cumulative; made cumulative when written
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.buckets):
            self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{_num(bound)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        tail = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{tail} {_num(self.sum)}", f"{name}_count{tail} {self.total}"]


def _num(value: float) -> str:
    """Integers without a decimal point (bucket bounds, counts), other floats as Python writes them."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Request counts by method, path and status; request latency by path; batch sizes and model-call seconds;
    queue depth and readiness read at scrape time through `gauges`."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.gauges = dict(gauges or {})  # name -> (help, read the value now)

    def request(self, method: str, path: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, path, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.setdefault(path, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, rows: int, seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(rows)
            self.batch_seconds.observe(seconds)

    def render(self) -> str:
        """The whole exposition, one metric family after another."""
        with self._lock:
            lines = ["# HELP mm_http_requests_total HTTP requests answered.", "# TYPE mm_http_requests_total counter"]
            for (method, path, status), n in sorted(self.requests.items()):
                labels = f'method="{method}",path="{_escape(path)}",status="{status}"'
                lines.append(f"mm_http_requests_total{{{labels}}} {n}")
            lines += ["# HELP mm_http_request_duration_seconds Time from request start to response end.",
                      "# TYPE mm_http_request_duration_seconds histogram"]
            for path, hist in sorted(self.latency.items()):
                lines += hist.lines("mm_http_request_duration_seconds", f'path="{_escape(path)}"')
            lines += ["# HELP mm_batch_size Rows per model call.", "# TYPE mm_batch_size histogram"]
            lines += self.batch_size.lines("mm_batch_size")
            lines += ["# HELP mm_batch_seconds Seconds per model call.", "# TYPE mm_batch_seconds histogram"]
            lines += self.batch_seconds.lines("mm_batch_seconds")
        for name, (help_text, read) in self.gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_num(read())}"]
        return "\n".join(lines) + "\n"
