"""Hostile and careless requests against a real `paddleopt serve` process on 127.0.0.1.

The server runs as its own process (the CLI a user starts), so a crash shows as a dead
process instead of taking pytest down with it. Every case asserts the status code and a
JSON error; after all of them the process is alive and the first model still answers with
the same numbers. Memory: the compressed-.npz bomb may not grow the server's peak RSS.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest

from serve.conftest import copy_artifact, garbage_model, no_digests, sample

REPO = Path(__file__).resolve().parents[2]


def peak_rss_mb(pid: int) -> float:
    """The process's resident-memory high-water mark (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def proc_server(tiny_inference, tmp_path_factory):
    """`paddleopt serve` in a subprocess: (process, url, artifact copy)."""
    art = copy_artifact(tiny_inference.path, tmp_path_factory.mktemp("fuzz") / "v1")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paddleopt", "serve", str(art), "--port", "0",
         "--max-body-mb", "1", "--max-request-rows", "16", "--body-timeout", "1.5",
         "--workers", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if " on http://" in line:
            url = line.split(" on ", 1)[1].split()[0]
    if url is None:
        proc.kill()
        pytest.fail(f"the server did not start: {proc.stderr.read()[-2000:]}")
    yield proc, url, art
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (8-bit grey) with one tiny data chunk: a
    decompression bomb as a decoder sees it, 60 bytes on the wire."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def npz_bomb(rows: int) -> bytes:
    """An .npz whose 'x' is rows x 1 x 8 x 8 float32 zeros, deflated (~1000x smaller)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 1, 8, 8)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x.npy", "w",
                                                                        force_zip64=True) as f:
        f.write(header.getvalue())
        zeros = bytes(1 << 22)
        for _ in range(rows * 256 // len(zeros)):
            f.write(zeros)
    return buf.getvalue()


X = sample(2, seed=3)
JSON = {"Content-Type": "application/json"}
CASES = [
    # (name, content, headers, query, status, words in the error)
    ("deep json", b"[" * 100_000 + b"]" * 100_000, JSON, "", 400, "nested too deeply"),
    ("deep json object", b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", JSON, "",
     400, "nested too deeply"),
    ("json bool", json.dumps({"inputs": {"x": [[[[True] * 8] * 8]]}}).encode(), JSON, "",
     422, "true/false"),
    ("json bool mixed", json.dumps({"inputs": {"x": [[[[1.0] * 7 + [False]] * 8]]}}).encode(),
     JSON, "", 422, "true/false"),
    ("npy bool", npy(np.ones((1, 1, 8, 8), bool)), {"Content-Type": "application/x-npy"}, "",
     422, "dtype bool"),
    ("raw bool", np.ones(64, bool).tobytes(), {"Content-Type": "application/octet-stream",
                                               "X-Shape": "1,1,8,8", "X-Dtype": "bool"}, "",
     422, "not numeric"),
    ("top_k too big", json.dumps({"inputs": {"x": X.tolist()}, "top_k": 1000}).encode(), JSON,
     "", 422, "10 classes"),
    ("top_k query too big", npy(X), {"Content-Type": "application/x-npy"}, "?top_k=11", 422,
     "10 classes"),
    ("top_k negative", json.dumps({"inputs": {"x": X.tolist()}, "top_k": -1}).encode(), JSON,
     "", 422, "non-negative"),
    ("image bomb", json.dumps({"images": [base64.b64encode(png_header_only(30000, 30000))
                                          .decode()]}).encode(), JSON, "", 413, "pixels"),
    ("image bomb below PIL's limit", json.dumps({"images": [base64.b64encode(
        png_header_only(9000, 9000)).decode()]}).encode(), JSON, "", 413, "9000x9000"),
    ("npz not zip", b"PK\x03\x04garbage", {"Content-Type": "application/x-npz"}, "", 400,
     "not a readable .npz"),
    ("npy truncated", npy(X)[:-7], {"Content-Type": "application/x-npy"}, "", 400,
     "not a readable .npy"),
    ("npy complex", npy(X.astype(np.complex64)),
     {"Content-Type": "application/x-npy"}, "", 422, "complex64"),
    ("npy NaN", npy(np.full((1, 1, 8, 8), np.nan, np.float32)),
     {"Content-Type": "application/x-npy"}, "", 422, "NaN"),
    ("raw wrong size", X.tobytes()[:-4], {"Content-Type": "application/octet-stream",
                                          "X-Shape": "2,1,8,8"}, "", 422, "needs 512"),
    ("raw bad shape", X.tobytes(), {"Content-Type": "application/octet-stream",
                                    "X-Shape": "two"}, "", 422, "X-Shape"),
    ("raw huge shape", X.tobytes(), {"Content-Type": "application/octet-stream",
                                     "X-Shape": "99999999999,99999999999"}, "", 422, "needs"),
    ("too many rows", npy(sample(17)), {"Content-Type": "application/x-npy"}, "", 413,
     "at most 16"),
    ("zero rows", npy(sample(0)), {"Content-Type": "application/x-npy"}, "", 422, "no samples"),
    ("body too large", bytes(2 << 20), {"Content-Type": "application/x-npy"}, "", 413,
     "at most"),
    ("empty", b"", JSON, "", 400, "empty body"),
    ("not utf-8", b'{"inputs": "\xff\xfe"}', JSON, "", 400, "not valid JSON"),
    ("nan literal", b'{"inputs": {"x": [[[[NaN]]]]}}', JSON, "", 422, "NaN"),
    ("unknown field", b'{"inputs": [], "extra": 1}', JSON, "", 422, "unknown field"),
    ("images not strings", b'{"images": [1, 2]}', JSON, "", 422, "base64 strings"),
    ("image not base64", b'{"images": ["***"]}', JSON, "", 422, "not valid base64"),
    ("image not an image", json.dumps({"images": [base64.b64encode(b"hello").decode()]})
     .encode(), JSON, "", 422, "not a readable image"),
    ("texts on an image model", b'{"texts": ["hi"]}', JSON, "", 422, "no text"),
    ("binary answer for top_k", npy(X), {"Content-Type": "application/x-npy",
                                         "Accept": "application/x-npy"}, "?top_k=2", 422,
     "JSON answer only"),
]


def test_malformed_requests_get_4xx_json_and_the_server_lives(proc_server):
    proc, url, _ = proc_server
    with httpx.Client(base_url=url, timeout=60) as c:
        before = c.post("/predict", json={"inputs": {"x": X.tolist()}}).json()
        for name, content, headers, query, status, words in CASES:
            r = c.post("/predict" + query, content=content, headers=headers)
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("application/json"), name
            assert words in r.json()["error"], (name, r.json())
            assert proc.poll() is None, f"the server died on {name!r}"
        after = c.post("/predict", json={"inputs": {"x": X.tolist()}}).json()
        assert after["outputs"] == before["outputs"]


def test_compressed_npz_bomb_is_refused_before_allocating(proc_server):
    proc, url, _ = proc_server
    bomb = npz_bomb(1 << 20)  # declares 256 MiB of float32
    assert len(bomb) < 512 * 1024
    peak = peak_rss_mb(proc.pid)
    started = time.monotonic()
    r = httpx.post(url + "/predict", content=bomb,
                   headers={"Content-Type": "application/x-npz"}, timeout=60)
    assert r.status_code == 413, r.text
    assert "declare" in r.json()["error"]
    assert time.monotonic() - started < 5
    assert peak_rss_mb(proc.pid) - peak < 32  # the 256 MiB were never allocated
    small = io.BytesIO()
    np.savez_compressed(small, x=X)
    ok = httpx.post(url + "/predict", content=small.getvalue(),
                    headers={"Content-Type": "application/x-npz"}, timeout=60)
    assert ok.status_code == 200, ok.text


def _raw_request(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head)
    return sock


def test_a_stalled_body_gets_408_and_the_connection_closes(proc_server):
    proc, url, _ = proc_server
    started = time.monotonic()
    sock = _raw_request(url, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        b"application/json\r\nContent-Length: 1000\r\n\r\n{\"inputs\":")
    try:
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break  # the server closed the connection
            data += chunk
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"not received within 1.5 s" in data
    assert 1.0 < elapsed < 8, elapsed


def test_metrics_have_real_statuses_and_histograms(proc_server):
    proc, url, _ = proc_server
    # A client that leaves mid-body: counted as 499, not 200.
    sock = _raw_request(url, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    sock.close()
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/predict", content=b"{bad").status_code == 400
        assert c.post("/predict", json={"inputs": {"x": X.tolist()}}).status_code == 200
        time.sleep(0.3)
        text = c.get("/metrics", headers={"Accept": "text/plain"}).text
        assert c.get("/metrics", params={"format": "prometheus"}).text.startswith("# HELP")
        snapshot = c.get("/metrics").json()
    assert "# HELP paddleopt_requests_total" in text
    assert 'paddleopt_requests_total{endpoint="/predict",status="400"}' in text
    assert 'paddleopt_requests_total{endpoint="/predict",status="499"}' in text
    assert 'paddleopt_request_duration_seconds_bucket{endpoint="/predict",le="0.005"}' in text
    assert 'paddleopt_model_info{backend="paddle_inference"' in text
    counts = snapshot["requests"]["/predict"]
    assert counts["499"] >= 1 and counts["400"] >= 1 and counts["200"] >= 1
    # latency counts the server's part only: a stalled upload does not make p99 seconds long
    assert snapshot["predict_latency_ms"]["max"] < 5000


@pytest.mark.parametrize("make_bad, words", [
    # the artifact layer now refuses an unparseable program before Paddle sees it; a program
    # that parses and still crashes Paddle dies in the reload's child process instead
    (garbage_model, ("not a Paddle program", "fails to load")),
    (no_digests, ("no 'file_digests'", "no sha256")),
])
def test_bad_reloads_are_refused_and_the_old_model_answers(proc_server, tmp_path, make_bad,
                                                          words):
    proc, url, art = proc_server
    bad = make_bad(art, tmp_path / "bad")
    with httpx.Client(base_url=url, timeout=120) as c:
        before = c.post("/predict", json={"inputs": {"x": X.tolist()}}).json()
        r = c.post("/reload", json={"artifact": str(bad)})
        assert r.status_code == 422, r.text
        assert any(w in r.json()["error"] for w in words), r.json()
        assert proc.poll() is None, "the server died on reload"
        after = c.post("/predict", json={"inputs": {"x": X.tolist()}}).json()
        assert after["model_version"] == before["model_version"]
        assert after["outputs"] == before["outputs"]
    shutil.rmtree(bad)
