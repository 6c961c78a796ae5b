"""mm serve over real HTTP on 127.0.0.1 (uvicorn in a thread), against a fake predictor: inputs, errors, batching,
back-pressure, model failures, health, info, metrics and the request log (the process-level tests, SIGTERM included,
are in test_serve_process.py). Timing never decides a result: a gate the test controls holds the model call, and
waits are on conditions (bounded), so every assertion is about what happened, not how fast."""

from __future__ import annotations

import base64
import io
import logging
import math
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from PIL import Image
from serve_helpers import (
    ThreadedServer,
    call,
    chunked_too_large,
    declared_too_large,
    in_threads,
    metric,
    png,
    post_json,
    predict_form,
    predict_json,
    wait_for,
)

from mmcli.deploy.predictor import InputError, Predictor
from mmcli.deploy.serve import create_app

MAX_PIXELS = 64 * 64
LABELS = ("cat", "dog", "fish")


def expected(mean: float, text: str) -> dict:
    """The fake model: deterministic probabilities from the image's mean grey level and the text."""
    scores = [mean / 64.0, len(text) / 8.0, (sum(map(ord, text)) % 13) / 4.0]
    exp = [math.exp(s) for s in scores]
    probs = {label: e / sum(exp) for label, e in zip(LABELS, exp, strict=True)}
    top = sorted(probs.items(), key=lambda kv: -kv[1])
    return {"label": top[0][0], "probabilities": probs, "top_k": [{"label": k, "probability": p} for k, p in top]}


class FakePredictor:
    """Image (PNG bytes, decoded with Pillow) + text. `gate`: every model call waits for it (at most 10 s), so a
    test can hold a batch in flight; `entered` is set once the first call has started. Text "boom" makes the call
    raise. `warm_gate` holds warm_up."""

    def __init__(self, gate: threading.Event | None = None, warm_gate: threading.Event | None = None):
        self.inputs = [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]
        self.labels = list(LABELS)
        self.version = "fake-1"
        self.gate, self.warm_gate = gate, warm_gate
        self.batches: list[int] = []
        self.entered = threading.Event()

    def prepare(self, row: dict) -> tuple[float, str]:
        unknown = set(row) - {"image", "text"}
        if unknown:
            raise InputError(422, min(unknown), "unknown column")
        if not row:
            raise InputError(422, "body", "no inputs")
        mean = 0.0
        if "image" in row:
            try:
                img = Image.open(io.BytesIO(row["image"]))
                if img.width * img.height > MAX_PIXELS:  # checked from the header, before decoding the pixels
                    raise InputError(413, "image", f"{img.width}x{img.height} is over {MAX_PIXELS} pixels")
                grey = img.convert("L")
            except (OSError, SyntaxError, ValueError):
                raise InputError(400, "image", "not a decodable image") from None
            mean = float(np.asarray(grey, dtype=np.float64).mean())
        return mean, str(row.get("text", ""))

    def run(self, prepared: list) -> list[dict]:
        self.batches.append(len(prepared))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if any(text == "boom" for _, text in prepared):
            raise RuntimeError("boom")
        return [expected(mean, text) for mean, text in prepared]

    def warm_up(self) -> None:
        if self.warm_gate is not None:
            self.warm_gate.wait(10)


@pytest.fixture(scope="module")
def server():
    """One server shared by the read-only tests: -> (port, predictor)."""
    fake = FakePredictor()
    with ThreadedServer(create_app(fake, max_body_bytes=16 * 1024, top_k=2)) as port:
        wait_for(lambda: call(port, "GET", "/health/ready")[0] == 200, what="ready")
        yield port, fake


def test_fake_meets_the_protocol():
    assert isinstance(FakePredictor(), Predictor)


def test_multipart_and_json_give_the_model_answer(server):
    port, _ = server
    want = expected(100.0, "a small photo")
    want["top_k"] = want["top_k"][:2]  # the server's top_k setting
    status, _, form = predict_form(port, {"text": "a small photo"}, {"image": png(value=100)})
    assert status == 200, form
    assert form == want
    assert predict_json(port, image=png(value=100), text="a small photo")[2] == want
    data_url = "data:image/png;base64," + base64.b64encode(png(value=100)).decode()
    assert post_json(port, "/predict", {"inputs": {"image": data_url, "text": "a small photo"}})[2] == want
    assert predict_form(port, {"text": "only text"}, {})[2]["label"] == expected(0.0, "only text")["label"]
    urlencoded_type = {"Content-Type": "application/x-www-form-urlencoded"}
    urlencoded = call(port, "POST", "/predict", b"text=only+text", urlencoded_type)
    assert urlencoded[2]["probabilities"] == expected(0.0, "only text")["probabilities"]


def test_batch_endpoint_answers_in_row_order_and_names_a_bad_row(server):
    port, _ = server
    rows = [{"text": f"row {i}" * i} for i in range(1, 5)]
    status, _, out = post_json(port, "/predict/batch", {"rows": rows})
    assert status == 200, out
    assert [p["probabilities"] for p in out["predictions"]] == [expected(0.0, r["text"])["probabilities"]
                                                                 for r in rows]
    status, _, out = post_json(port, "/predict/batch", {"rows": [{"text": "fine"}, {"image": "AAAA"}]})
    assert (status, out["error"]["row"], out["error"]["field"]) == (400, 1, "image")


BAD = {
    "undecodable image (multipart)": (lambda p: predict_form(p, {"text": "t"}, {"image": b"not a png"}), 400,
                                      "image"),
    "undecodable image (json)": (lambda p: predict_json(p, image=b"\x89PNG garbage"), 400, "image"),
    "too many pixels": (lambda p: predict_json(p, image=png(size=100)), 413, "image"),
    "bad base64": (lambda p: predict_json(p, image="not base64!", text="t"), 400, "image"),
    "unknown column": (lambda p: predict_json(p, colour="red"), 422, "colour"),
    "no inputs (json)": (lambda p: predict_json(p), 422, "body"),
    "only empty inputs": (lambda p: predict_json(p, text="", image=None), 422, "body"),
    "no inputs (multipart)": (lambda p: predict_form(p, {}, {}), 422, "body"),
    "no inputs key": (lambda p: post_json(p, "/predict", {"text": "hi"}), 422, "inputs"),
    "text not a string": (lambda p: predict_json(p, text=["a"]), 422, "text"),
    "not json": (lambda p: call(p, "POST", "/predict", b"{nope", {"Content-Type": "application/json"}), 400, "body"),
    "wrong content type": (lambda p: call(p, "POST", "/predict", b"hi", {"Content-Type": "text/plain"}), 415,
                           "body"),
    "no content type": (lambda p: call(p, "POST", "/predict", b"hi"), 415, "body"),
    "multipart to /predict/batch": (lambda p: call(p, "POST", "/predict/batch", b"x", {
        "Content-Type": "multipart/form-data; boundary=x"}), 415, "body"),
    "empty batch": (lambda p: post_json(p, "/predict/batch", {"rows": []}), 422, "rows"),
    "body over the limit (Content-Length)": (declared_too_large, 413, "body"),
    "body over the limit (chunked)": (chunked_too_large, 413, "body"),
    "unknown path": (lambda p: call(p, "GET", "/nope"), 404, "path"),
    "wrong method": (lambda p: call(p, "GET", "/predict"), 405, "path"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_4xx_naming_the_field(server, case):
    send, status, field = BAD[case]
    got, _, body = send(server[0])
    assert got == status, body
    assert body["error"]["field"] == field and body["error"]["reason"], body


def test_a_string_for_an_image_is_never_opened_as_a_path(server, tmp_path):
    path = tmp_path / "abcdefgh.png"  # a real image on the server's disk
    path.write_bytes(png(value=200))
    for name in (str(path), str(path) + "=" * (-len(str(path)) % 4)):  # as is, and padded to decode as base64
        status, _, body = predict_json(server[0], image=name)
        assert (status, body["error"]["field"]) == (400, "image"), body


def test_64_concurrent_requests_get_the_sequential_answers(server):
    port, _ = server
    reqs = [(png(value=4 * i), f"text {i}") for i in range(64)]

    def send(req: tuple[bytes, str]) -> dict:
        return predict_json(port, image=req[0], text=req[1])[2]

    sequential = [send(r) for r in reqs]
    with ThreadPoolExecutor(64) as pool:
        concurrent = list(pool.map(send, reqs))
    assert concurrent == sequential
    assert all("label" in a for a in concurrent)


def test_health_info_metrics_and_request_log(server, caplog):
    port, _ = server
    caplog.set_level(logging.INFO, logger="mmcli.serve")
    assert call(port, "GET", "/health/live")[:3:2] == (200, {"status": "live"})
    info = call(port, "GET", "/info")[2]
    assert info["inputs"] == FakePredictor().inputs and info["labels"] == list(LABELS)
    assert info["version"] == "fake-1" and info["top_k"] == 2
    assert info["batching"] == {"enabled": True, "max_batch": 32, "max_wait_ms": 5.0, "queue_size": 512}
    assert info["limits"]["max_body_bytes"] == 16 * 1024
    predict_json(port, text="log me")
    predict_json(port)  # 422
    post_json(port, "/predict/batch", {"rows": [{"text": "a"}, {"text": "b"}]})
    # a request is logged and counted just after its answer is sent: wait for that, not for luck
    counted = [rf'^mm_http_requests_total\{{method="POST",path="{p}",status="{c}"\}} \d+$'
               for p, c in (("/predict", 200), ("/predict", 422), ("/predict/batch", 200))]
    wait_for(lambda: all(re.search(c, call(port, "GET", "/metrics")[2], re.MULTILINE) for c in counted),
             what="requests counted")
    status, head, text = call(port, "GET", "/metrics")
    assert status == 200 and head["content-type"].startswith("text/plain; version=0.0.4")
    assert 'mm_http_request_duration_seconds_bucket{path="/predict",le="+Inf"}' in text
    assert metric(text, "mm_batch_size_count") >= 2 and metric(text, "mm_batch_size_sum") >= 3
    assert metric(text, "mm_queue_depth") == 0 and metric(text, "mm_ready") == 1
    lines = [r.getMessage() for r in list(caplog.records) if r.name == "mmcli.serve"]
    assert any(re.fullmatch(r"POST /predict 200 [\d.]+ms rows=1", m) for m in lines), lines
    assert any(re.fullmatch(r"POST /predict/batch 200 [\d.]+ms rows=2", m) for m in lines), lines


def test_ready_only_after_warm_up():
    warm = threading.Event()
    with ThreadedServer(create_app(FakePredictor(warm_gate=warm))) as port:
        assert call(port, "GET", "/health/ready")[0] == 503
        assert call(port, "GET", "/health/live")[0] == 200
        warm.set()
        wait_for(lambda: call(port, "GET", "/health/ready")[0] == 200, what="ready after warm-up")


def test_a_failed_warm_up_keeps_the_server_unready_and_says_why():
    class Broken(FakePredictor):
        def warm_up(self) -> None:
            raise RuntimeError("weights missing")

    with ThreadedServer(create_app(Broken())) as port:
        wait_for(lambda: call(port, "GET", "/health/ready")[2]["status"] == "warm-up failed", what="failed warm-up")
        status, _, body = call(port, "GET", "/health/ready")
    assert status == 503 and "weights missing" in body["reason"]


def _hold_first_batch(fake: FakePredictor, app, port: int, queued: list[str]):
    """Start one request and wait until the model is inside it (gate closed); then queue `queued` texts and wait
    until they are all waiting. -> the threads and their results (first request first)."""
    def send(text: str) -> tuple:
        return predict_json(port, text=text)

    first, first_result = in_threads(send, [("first",)])
    wait_for(fake.entered.is_set, what="first batch in the model")
    threads, results = in_threads(send, [(t,) for t in queued])
    wait_for(lambda: app.state.mm.batcher.depth == len(queued), what="rows queued")
    return first + threads, first_result, results


def test_rows_that_wait_together_run_as_one_batch():
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    app = create_app(fake, max_batch=32, max_wait_ms=5)
    with ThreadedServer(app) as port:
        threads, first, rest = _hold_first_batch(fake, app, port, [f"t{i}" for i in range(7)])
        gate.set()
        for t in threads:
            t.join(30)
    assert fake.batches == [1, 7]
    assert [r[0] for r in first + rest] == [200] * 8
    assert [r[2]["label"] for r in rest] == [expected(0.0, f"t{i}")["label"] for i in range(7)]


def test_a_full_queue_answers_503_with_retry_after():
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    app = create_app(fake, max_batch=1, queue_size=2)
    with ThreadedServer(app) as port:
        threads, first, rest = _hold_first_batch(fake, app, port, ["b", "c"])
        status, head, body = predict_json(port, text="d")
        gate.set()
        for t in threads:
            t.join(30)
    assert (status, head["retry-after"], body["error"]["field"]) == (503, "1", "body")
    assert [r[0] for r in first + rest] == [200, 200, 200]
    assert fake.batches == [1, 1, 1]


def test_a_failing_model_call_fails_only_its_batch():
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    app = create_app(fake)
    with ThreadedServer(app) as port:
        threads, first, rest = _hold_first_batch(fake, app, port, ["boom", "innocent"])
        gate.set()
        for t in threads:
            t.join(30)
        after = predict_json(port, text="after")
    assert fake.batches == [1, 2, 1]
    assert first[0][0] == 200 and after[0] == 200
    assert [(r[0], r[2]["error"]["field"]) for r in rest] == [(500, "model"), (500, "model")]
