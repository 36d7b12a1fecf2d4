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


def npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_npy_body_with_json_answer(client, tiny_inference):
    x = sample(3, seed=5)
    r = client.post("/predict?top_k=1", content=npy_bytes(x),
                    headers={"Content-Type": "application/x-npy"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"]["logits"], direct(tiny_inference, x),
                               atol=1e-5)
    assert len(r.json()["predictions"]) == 3


def test_raw_body_and_raw_answer(client, tiny_inference):
    x = sample(2, seed=6)
    r = client.post("/predict", content=x.tobytes(),
                    headers={"Content-Type": "application/octet-stream", "X-Shape": "2,1,8,8",
                             "Accept": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-shape"] == "2,10" and r.headers["x-dtype"] == "float32"
    assert r.headers["x-model-version"].startswith("v") and int(r.headers["x-batch-rows"]) >= 2
    out = np.frombuffer(r.content, dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(out, direct(tiny_inference, x), atol=1e-5)


def test_npz_body_and_answers_and_dtype_conversion(client, tiny_inference):
    x = sample(2, seed=7)
    buf = io.BytesIO()
    np.savez(buf, x=x.astype(np.float64))  # float64 -> the model's float32
    r = client.post("/predict", content=buf.getvalue(),
                    headers={"Content-Type": "application/x-npz",
                             "Accept": "application/x-npz"})
    assert r.status_code == 200, r.text
    with np.load(io.BytesIO(r.content)) as out:
        assert out.files == ["logits"]
        np.testing.assert_allclose(out["logits"], direct(tiny_inference, x), atol=1e-5)
    r = client.post("/predict", content=npy_bytes(x),
                    headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
    assert r.status_code == 200
    np.testing.assert_allclose(np.load(io.BytesIO(r.content)), direct(tiny_inference, x),
                               atol=1e-5)


RAW = "application/octet-stream"


@pytest.mark.parametrize("content, headers, status, words", [
    (sample(1).tobytes(), {"Content-Type": RAW}, 422, "needs an X-Shape header"),
    (sample(1).tobytes(), {"Content-Type": RAW, "X-Shape": "1,1,8"}, 422, "has 256 bytes"),
    (sample(1).tobytes(), {"Content-Type": RAW, "X-Shape": "1,x,8,8"}, 422,
     "not a list of non-negative integers"),
    (sample(1).tobytes(), {"Content-Type": RAW, "X-Shape": "1,8,8"}, 422, "the model takes"),
    (sample(1).tobytes(), {"Content-Type": RAW, "X-Shape": "1,1,8,8", "X-Dtype": "float64"},
     422, "needs 512"),
    (sample(1).tobytes(), {"Content-Type": RAW, "X-Shape": "1,1,8,8", "X-Dtype": "bogus"}, 422,
     "not a numpy dtype"),
    (sample(1).tobytes(), {"Content-Type": RAW, "X-Shape": "1,1,8,8", "X-Dtype": "U1"}, 422,
     "not numeric"),
    (b"not an array", {"Content-Type": "application/x-npy"}, 400, "not a readable .npy"),
    (npy_bytes(sample(1).astype(np.complex64)), {"Content-Type": "application/x-npy"}, 422,
     "dtype complex64"),
    (npy_bytes(np.full((1, 1, 8, 8), np.nan, np.float32)),
     {"Content-Type": "application/x-npy"}, 422, "NaN"),
    (npy_bytes(sample(1)[0]), {"Content-Type": "application/x-npy"}, 422, "has shape [1, 8, 8]"),
    (b"PK\x03\x04junk", {"Content-Type": "application/x-npz"}, 400, "not a readable .npz"),
    (npy_bytes(sample(1)), {"Content-Type": "application/x-npy"}, 422, "top_k must be"),
    (npy_bytes(sample(1)), {"Content-Type": "application/x-npy", "Accept": RAW}, 422,
     "JSON answer only"),
], ids=["no-shape", "byte-count", "bad-shape-header", "wrong-shape", "dtype-bytes",
        "bad-dtype", "text-dtype", "not-npy", "complex", "nan", "npy-shape", "not-npz",
        "bad-top-k", "top-k-binary-answer"])
def test_bad_binary_requests_get_a_clear_4xx(client, content, headers, status, words):
    params = {"top_k": "-2" if "top_k must" in words else "1" if "JSON answer" in words else
              None}
    r = client.post("/predict", content=content, headers=headers,
                    params={k: v for k, v in params.items() if v is not None})
    assert r.status_code == status, r.text
    body = r.json()
    assert words in body["error"], body
    assert body.get("fix")


def test_npz_names_must_match_and_binary_rows_are_limited(client):
    buf = io.BytesIO()
    np.savez(buf, y=sample(1))
    r = client.post("/predict", content=buf.getvalue(),
                    headers={"Content-Type": "application/x-npz"})
    assert r.status_code == 422 and "missing ['x'], unknown ['y']" in r.json()["error"]
    r = client.post("/predict", content=npy_bytes(sample(17)),
                    headers={"Content-Type": "application/x-npy"})
    assert r.status_code == 413 and "at most 16" in r.json()["error"]
