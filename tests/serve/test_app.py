"""/predict, /health, /metrics over a real uvicorn server on 127.0.0.1; bad requests -> 4xx."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from serve.conftest import sample


def direct(tiny_inference, x):
    from paddleopt.deploy.predictor import load_predictor

    return load_predictor(tiny_inference).run([x])[0]


def test_predict_tensors_match_the_predictor(client, tiny_inference):
    x = sample(3)
    r = client.post("/predict", json={"inputs": {"x": x.tolist()}, "top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    logits = np.asarray(body["outputs"]["logits"])
    assert logits.shape == (3, 10)
    np.testing.assert_allclose(logits, direct(tiny_inference, x), atol=1e-5)
    assert body["model_version"].startswith("v")
    top = body["predictions"][0]
    assert len(top) == 2 and top[0]["label"] == str(top[0]["class_id"])
    assert top[0]["class_id"] == int(np.argmax(logits[0]))


def test_single_input_list_form(client):
    r = client.post("/predict", json={"inputs": sample(1).tolist()})
    assert r.status_code == 200 and len(r.json()["outputs"]["logits"]) == 1


def test_predict_base64_images_use_the_manifest_preprocess(client, tiny_inference):
    from PIL import Image

    from paddleopt.data.preprocess import preprocess_images

    pixels = (np.random.default_rng(1).random((8, 8)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    r = client.post("/predict", json={"images": [base64.b64encode(buf.getvalue()).decode()]})
    assert r.status_code == 200, r.text
    path = io.BytesIO(buf.getvalue())
    expected_in = preprocess_images([path], tiny_inference.manifest.preprocess)
    np.testing.assert_allclose(r.json()["outputs"]["logits"],
                               direct(tiny_inference, expected_in), atol=1e-5)


@pytest.mark.parametrize("content, status, words", [
    (b"{not json", 400, "not valid JSON"),
    (b"", 400, "empty body"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"inputs": {"y": [[1]]}}', 422, "missing ['x'], unknown ['y']"),
    (b'{"inputs": {"x": [[1, 2]]}}', 422, "has shape [1, 2], the model takes [-1, 1, 8, 8]"),
    (b'{"inputs": {"x": "abc"}}', 422, "not a rectangular array"),
    (b'{"inputs": {"x": [[[1, 2], [3]]]}}', 422, "not a rectangular array"),
    (b'{"inputs": {"x": [[[[NaN]]]]}}', 422, "NaN"),
    (b'{"inputs": {"x": []}}', 422, "shape [0]"),
    (b'{"images": ["%%%"]}', 422, "not valid base64"),
    (b'{"images": ["aGVsbG8="]}', 422, "not a readable image"),
    (b'{"texts": ["hi"]}', 422, "no text preprocessing"),
    (b'{"inputs": {"x": [[1]]}, "images": []}', 422, "exactly one of"),
    (b'{"inputz": {}}', 422, "unknown field"),
    (b'{"inputs": [[[[1]]]], "top_k": -1}', 422, "top_k"),
])
def test_bad_requests_get_a_clear_4xx(client, content, status, words):
    r = client.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    body = r.json()
    assert words in body["error"], body
    assert body.get("fix") or status == 400


def test_size_limits(client):
    too_many = sample(17).tolist()  # max_request_rows is 16
    r = client.post("/predict", json={"inputs": {"x": too_many}})
    assert r.status_code == 413 and "at most 16" in r.json()["error"]
    big = b'{"inputs": {"x": [' + b"0," * 40000 + b"0]}}"  # > 64 KiB body limit
    r = client.post("/predict", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "65536" in r.json()["error"]


def test_unknown_route_and_method(client):
    assert client.get("/predict").status_code == 405
    assert client.get("/nope").status_code == 404


def test_health_and_metrics(client):
    client.post("/predict", json={"inputs": {"x": sample(2).tolist()}})
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["kind"] == "inference"
    assert health["model"]["inputs"][0]["name"] == "x"
    metrics = client.get("/metrics").json()
    assert metrics["requests"]["/predict"]["200"] >= 1
    assert metrics["predict_latency_ms"]["p99"] >= metrics["predict_latency_ms"]["p50"] > 0
    assert sum(metrics["batch_size_histogram"].values()) == metrics["batches"] >= 1
    assert metrics["cache"]["loaded"] == 1
    text = client.get("/metrics", params={"format": "prometheus"}).text
    assert 'paddleopt_requests_total{endpoint="/predict",status="200"}' in text
    assert "paddleopt_batch_rows_bucket" in text


def test_concurrent_requests_are_batched_and_split_back(server, tiny_inference):
    """Concurrent single-sample requests share model runs, and each answer is its own
    sample's row (checked against one direct run over all samples)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    xs = np.concatenate([sample(1, seed=i) for i in range(96)])
    expected = direct(tiny_inference, xs)
    before = httpx.get(server.url + "/metrics").json()

    def ask(i: int) -> list:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            r = c.post("/predict", json={"inputs": {"x": xs[i:i + 1].tolist()}})
            assert r.status_code == 200, r.text
            return r.json()["outputs"]["logits"][0]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(len(xs))))
    np.testing.assert_allclose(np.asarray(answers), expected, atol=1e-5)
    after = httpx.get(server.url + "/metrics").json()
    rows = after["batch_rows_total"] - before["batch_rows_total"]
    batches = after["batches"] - before["batches"]
    assert rows == len(xs) and batches < len(xs), (rows, batches)


def test_keep_alive_requests_are_not_held_by_nagle(server):
    """The listening socket is TCP with TCP_NODELAY: without it, asyncio leaves Nagle on and
    every answer on a keep-alive connection waited for the client's delayed ACK (~40 ms)."""
    import json
    import socket
    import time

    from paddleopt.serve.server import bind_socket

    probe = bind_socket("127.0.0.1", 0)
    try:
        assert probe.proto == socket.IPPROTO_TCP
        assert probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        probe.close()
    body = json.dumps({"inputs": {"x": sample(1).tolist()}}).encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    port = int(server.url.rsplit(":", 1)[1])
    times = []
    with socket.create_connection(("127.0.0.1", port)) as conn:
        for _ in range(12):
            started = time.perf_counter()
            conn.sendall(head + body)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                data += conn.recv(65536)
            times.append(time.perf_counter() - started)
    assert sorted(times)[len(times) // 2] < 0.025, times  # ~1 ms; 40+ ms with Nagle
