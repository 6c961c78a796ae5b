"""mm serve as a process: SIGTERM with requests in flight (a subprocess), the `mm serve` command, the micro-batcher
on its own, and the listening socket. Waits are on conditions with deadlines, never on elapsed time."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_helpers import call, in_threads, metric, predict_json, wait_for

from mmcli.deploy.batching import Closed, MicroBatcher, QueueFull

ROOT = Path(__file__).resolve().parents[1]


def test_batcher_close_drains_queued_rows_and_refuses_new_ones():
    gate, entered, batches = threading.Event(), threading.Event(), []

    def run(rows: list) -> list:
        batches.append(len(rows))
        entered.set()
        gate.wait(10)
        return [row * 2 for row in rows]

    batcher = MicroBatcher(run, max_batch=2, max_wait_ms=0)  # wait 0: no batching, one row per call
    futures = batcher.submit(list(range(5)))
    wait_for(entered.is_set, what="first call")
    closer = threading.Thread(target=batcher.close)  # drain=True: queued rows are answered before it returns
    closer.start()
    gate.set()
    closer.join(30)
    assert [f.result(0) for f in futures] == [0, 2, 4, 6, 8]
    assert batches == [1] * 5
    with pytest.raises(Closed):
        batcher.submit([5])


def test_a_batch_larger_than_the_free_queue_enters_whole_or_not_at_all():
    gate = threading.Event()
    batcher = MicroBatcher(lambda rows: [gate.wait(10) for _ in rows], max_batch=1, queue_size=3)
    first = batcher.submit([0])
    wait_for(lambda: batcher.running == 1, what="first call")
    with pytest.raises(QueueFull):
        batcher.submit([1, 2, 3, 4])
    assert batcher.depth == 0
    rest = batcher.submit([1, 2, 3])
    gate.set()
    batcher.close()
    assert [f.result(0) for f in first + rest] == [True] * 4


SLOW_SERVER = """
import sys, time
from pathlib import Path
from mmcli.deploy.serve import serve

GATE = Path(sys.argv[1])

class Slow:
    inputs = [{"name": "text", "kind": "text"}]
    labels = ["a", "b"]
    version = "slow-1"

    def prepare(self, row):
        return row["text"]

    def run(self, prepared):
        deadline = time.monotonic() + 20  # bounded: the test opens the gate long before this
        while not GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # slow, so the drain has batches left to run
        return [{"label": "a", "probabilities": {"a": 0.9, "b": 0.1}, "top_k": [{"label": "a", "probability": 0.9}]}
                for _ in prepared]

    def warm_up(self):
        pass

serve(Slow(), "127.0.0.1", 0, max_batch=2, max_wait_ms=1)
"""


def _lines(proc: subprocess.Popen) -> queue.Queue:
    """The process's stderr, line by line, read on a thread (so a wait for a line can have a deadline)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    return lines


def _wait_line(lines: queue.Queue, pattern: str, seen: list[str]) -> re.Match:
    while True:
        line = lines.get(timeout=30)
        seen.append(line)
        if m := re.search(pattern, line):
            return m


def test_sigterm_answers_every_request_in_flight_and_exits_0(tmp_path):
    script, gate = tmp_path / "slow_server.py", tmp_path / "gate"
    script.write_text(SLOW_SERVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(gate)], stderr=subprocess.PIPE, text=True, env=env)
    seen: list[str] = []
    try:
        lines = _lines(proc)
        port = int(_wait_line(lines, r"listening on http://127\.0\.0\.1:(\d+)", seen).group(1))
        wait_for(lambda: call(port, "GET", "/health/ready")[0] == 200, timeout=30, what="ready")
        threads, results = in_threads(lambda t: predict_json(port, text=t), [(f"r{i}",) for i in range(6)])
        def pending() -> float:
            text = call(port, "GET", "/metrics")[2]
            return metric(text, "mm_queue_depth") + metric(text, "mm_batch_rows_running")

        wait_for(lambda: pending() == 6, timeout=30, what="6 rows in the server")
        proc.send_signal(signal.SIGTERM)
        _wait_line(lines, r"Shutting down", seen)  # uvicorn has stopped accepting; the rows are still held
        gate.touch()
        for t in threads:
            t.join(30)
        assert proc.wait(30) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [r[0] for r in results] == [200] * 6, results
    assert all(r[2]["label"] == "a" for r in results)


def test_cli_serve_help_and_unknown_path():
    from typer.testing import CliRunner

    from mmcli.cli import app

    out = CliRunner().invoke(app, ["serve", "--help"])
    assert out.exit_code == 0
    for option in ("--host", "--port", "--max-batch", "--max-wait-ms", "--queue-size", "--max-body-mb", "--top-k"):
        assert option in out.output
    out = CliRunner().invoke(app, ["serve", str(ROOT), "--max-batch", "0"])
    assert out.exit_code == 2 and "--max-batch" in out.output
    out = CliRunner().invoke(app, ["serve", "does-not-exist"])
    assert out.exit_code == 2 and "not found" in out.output
    out = CliRunner().invoke(app, ["serve", str(ROOT)])
    assert out.exit_code == 2 and "neither a finished run folder nor an ONNX bundle" in out.output


def test_mm_help_does_not_import_the_server():
    probe = ("import sys\nfrom typer.testing import CliRunner\nfrom mmcli.cli import app\n"
             "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
             "print(sorted(m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_the_listening_socket_is_tcp_so_asyncio_disables_nagle():
    # asyncio sets TCP_NODELAY only on sockets created with proto=IPPROTO_TCP; without it every keep-alive
    # response after the first waited ~40 ms for a delayed ACK (measured with benchmarks/serve.py)
    from mmcli.deploy.serve import bind_socket

    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
