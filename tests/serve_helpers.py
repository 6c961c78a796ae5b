"""HTTP test helpers for mm serve: a uvicorn server on a free 127.0.0.1 port in a thread, a tiny stdlib client,
multipart encoding, and bounded condition waits (never a bare sleep standing in for "long enough")."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable

import uvicorn
from PIL import Image

from mmcli.deploy.serve import bind_socket


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail the test (rather than hang) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class ThreadedServer:
    """`with ThreadedServer(app) as port:` serves `app` with uvicorn on 127.0.0.1:<free port> in a thread."""

    def __init__(self, app):
        self.sock = bind_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), what="server start")
        assert self.server.started, "server failed to start"
        return self.port

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "server did not stop"


def connect(port: int, timeout: float = 30.0) -> http.client.HTTPConnection:
    """A connection with Nagle's algorithm off (http.client writes headers and body separately; the body would
    wait for the server's delayed ACK)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30.0) -> tuple[int, dict, object]:
    """One request on a fresh connection -> (status, {lower-case header: value}, JSON or text body)."""
    conn = connect(port, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        return read(conn)
    finally:
        conn.close()


def read(conn: http.client.HTTPConnection) -> tuple[int, dict, object]:
    resp = conn.getresponse()
    data = resp.read()
    head = {k.lower(): v for k, v in resp.getheaders()}
    return resp.status, head, json.loads(data) if "json" in head.get("content-type", "") else data.decode()


def post_json(port: int, path: str, obj: object) -> tuple[int, dict, object]:
    return call(port, "POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})


def predict_json(port: int, **inputs) -> tuple[int, dict, object]:
    """POST /predict {"inputs": ...}; bytes values are sent base64-encoded."""
    enc = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in inputs.items()}
    return post_json(port, "/predict", {"inputs": enc})


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body -> (body, content type): plain fields, and files as image/png parts."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, data in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                  f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def predict_form(port: int, fields: dict[str, str], files: dict[str, bytes]) -> tuple[int, dict, object]:
    body, ctype = multipart(fields, files)
    return call(port, "POST", "/predict", body, {"Content-Type": ctype})


def png(size: int = 16, value: int = 128) -> bytes:
    """A size x size grey PNG (solid, so even large ones stay small on the wire)."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (value, value, value)).save(buf, "PNG")
    return buf.getvalue()


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample `name` in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def in_threads(fn, args_list: list[tuple]) -> tuple[list[threading.Thread], list]:
    """Start fn(*args) per args in its own thread; results land in the returned list (in order) once joined."""
    results: list = [None] * len(args_list)

    def work(i, args):
        results[i] = fn(*args)

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    return threads, results


def chunked_too_large(port: int) -> tuple[int, dict, object]:
    """A body with no Content-Length, sent in chunks that add up to more than the limit."""
    conn = connect(port)
    try:
        chunks = iter([b'{"inputs": {"text": "' + b"x" * 8192, b"x" * 8192, b"x" * 8192 + b'"}}'])
        conn.request("POST", "/predict", body=chunks, headers={"Content-Type": "application/json"},
                     encode_chunked=True)
        return read(conn)
    finally:
        conn.close()


def declared_too_large(port: int) -> tuple[int, dict, object]:
    """Headers claiming a 1 GB body; the answer must come without the server waiting for it."""
    conn = connect(port)
    try:
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(10**9))
        conn.endheaders()
        return read(conn)
    finally:
        conn.close()
