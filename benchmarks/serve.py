"""Latency and throughput of `mm serve` on loopback, micro-batching on (max-batch 32, wait 5 ms) and off (max-batch 1).

The server runs in a subprocess (so client threads and server do not share a GIL); each of C clients holds one
keep-alive connection and sends JSON /predict requests back to back until the fixed request count is reached. Rows
are built from the server's GET /info (a PNG for image inputs, a sentence for text, ...), so any predictor works:
  python benchmarks/serve.py --predictor fake [--overhead-ms 10 --row-ms 1]   # sleep-based model cost
  python benchmarks/serve.py --path RUN_OR_BUNDLE                           # a real model, via load_predictor
Prints a markdown table: p50/p95/p99 latency (ms), requests/s and the mean rows per model call.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODES = {"on": (32, 5.0), "off": (1, 0.0)}


class FakePredictor:
    """Image + text; prepare decodes the PNG (real work, on the request's thread); run sleeps overhead + rows x
    per-row, the shape of a model call's cost (fixed launch/dispatch cost, then per-sample compute)."""

    def __init__(self, overhead_ms: float, row_ms: float):
        self.inputs = [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]
        self.labels = ["cat", "dog", "fish"]
        self.version = f"fake (overhead {overhead_ms:g} ms + {row_ms:g} ms/row)"
        self.overhead_s, self.row_s = overhead_ms / 1000, row_ms / 1000

    def prepare(self, row: dict) -> int:
        from PIL import Image

        img = Image.open(io.BytesIO(row["image"])) if "image" in row else None
        return img.convert("RGB").size[0] if img else 0

    def run(self, prepared: list) -> list[dict]:
        time.sleep(self.overhead_s + self.row_s * len(prepared))
        probs = {"cat": 0.7, "dog": 0.2, "fish": 0.1}
        top = [{"label": k, "probability": v} for k, v in probs.items()]
        return [{"label": "cat", "probabilities": probs, "top_k": top} for _ in prepared]

    def warm_up(self) -> None:
        self.run([0])


def run_server(args) -> None:
    """The --serve side: one server with the given batching settings on a free port."""
    from mmcli.deploy.serve import serve

    if args.path:
        from mmcli.deploy.loader import load_predictor

        predictor = load_predictor(args.path)
    else:
        predictor = FakePredictor(args.overhead_ms, args.row_ms)
    serve(predictor, "127.0.0.1", 0, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, queue_size=4096)


def sample_row(inputs: list[dict]) -> dict:
    """A JSON row with a plausible value for every input kind."""
    from PIL import Image

    png = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(png, "PNG")
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:  # 0.1 s of 16 kHz mono silence
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    values = {"image": base64.b64encode(png.getvalue()).decode(), "audio": base64.b64encode(wav.getvalue()).decode(),
              "text": "a photo of a small thing", "numeric": "1.5", "categorical": "a"}
    return {i["name"]: values[i["kind"]] for i in inputs}


def connect(port: int) -> http.client.HTTPConnection:
    """A connection with Nagle's algorithm off, as urllib3 and httpx set it: http.client sends headers and body in
    two writes, and the body would otherwise wait for the server's delayed ACK (40 ms on Linux)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def get(port: int, path: str) -> tuple[int, str]:
    conn = connect(port)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def load(port: int, body: bytes, total: int, clients: int) -> tuple[list[float], float]:
    """`total` requests from `clients` threads, one keep-alive connection each -> (latencies s, wall s)."""
    lock, sent, latencies, failures = threading.Lock(), [0], [], []

    def client() -> None:
        conn = connect(port)
        while True:
            with lock:
                if sent[0] >= total:
                    break
                sent[0] += 1
            start = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            with lock:
                latencies.append(time.perf_counter() - start)
                if resp.status != 200:
                    failures.append(resp.status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return latencies, time.perf_counter() - start


def batch_totals(port: int) -> tuple[float, float]:
    """(rows, model calls) so far, from /metrics."""
    text = get(port, "/metrics")[1]
    rows = float(re.search(r"^mm_batch_size_sum (\S+)$", text, re.MULTILINE).group(1))
    return rows, float(re.search(r"^mm_batch_size_count (\S+)$", text, re.MULTILINE).group(1))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_server(args, mode: str) -> tuple[subprocess.Popen, int]:
    """The server subprocess for `mode` and its port (from its `listening on` log line); stderr is drained."""
    max_batch, wait = MODES[mode]
    cmd = [sys.executable, __file__, "--serve", "--max-batch", str(max_batch), "--max-wait-ms", str(wait)]
    cmd += ["--path", args.path] if args.path else ["--overhead-ms", str(args.overhead_ms), "--row-ms",
                                                    str(args.row_ms)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for line in proc.stderr:
        if m := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
            break
    else:
        raise SystemExit(f"server did not start (exit {proc.wait()})")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    deadline = time.monotonic() + 300
    while get(int(m.group(1)), "/health/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit("server not ready after 300 s")
        time.sleep(0.05)
    return proc, int(m.group(1))


def bench_mode(args, mode: str) -> list[str]:
    """Table rows for one batching mode, every concurrency on the same server."""
    proc, port = start_server(args, mode)
    try:
        body = json.dumps({"inputs": sample_row(json.loads(get(port, "/info")[1])["inputs"])}).encode()
        out = []
        for clients in args.concurrency:
            load(port, body, args.warmup, clients)
            rows0, calls0 = batch_totals(port)
            latencies, wall = load(port, body, args.requests, clients)
            rows1, calls1 = batch_totals(port)
            ms = [v * 1000 for v in latencies]
            out.append(f"| {mode} | {clients} | {args.requests} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | "
                       f"{pct(ms, 99):.1f} | {args.requests / wall:.0f} | {(rows1 - rows0) / (calls1 - calls0):.1f} |")
            print(out[-1], file=sys.stderr, flush=True)
        return out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--predictor", choices=["fake"], default="fake", help="built-in predictor (default fake)")
    src.add_argument("--path", help="run folder or ONNX bundle, loaded through mmcli.deploy.loader.load_predictor")
    ap.add_argument("--requests", type=int, default=400, help="timed requests per concurrency level")
    ap.add_argument("--warmup", type=int, default=64, help="untimed requests before each level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32], help="client counts")
    ap.add_argument("--overhead-ms", type=float, default=10.0, help="fake: fixed cost of one model call")
    ap.add_argument("--row-ms", type=float, default=1.0, help="fake: added cost per row in a call")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-batch", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        run_server(args)
        return
    what = args.path or f"fake predictor: {args.overhead_ms:g} ms per call + {args.row_ms:g} ms per row (sleep)"
    load_avg = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"mm serve on 127.0.0.1, {what}; {os.cpu_count()} CPU cores (load average {load_avg} at start, shared "
          f"with the clients); JSON /predict, one keep-alive connection per client; batching on = max-batch 32, "
          f"max-wait 5 ms; off = max-batch 1\n")
    rows = bench_mode(args, "on") + bench_mode(args, "off")
    rows.sort(key=lambda r: int(r.split("|")[2]))  # by clients, on before off
    print("| batching | clients | requests | p50 ms | p95 ms | p99 ms | req/s | rows per model call |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
