"""--executor process: predictors in child processes behind the same pool, batcher, HTTP layer
and hot reload (Paddle Inference holds the GIL while it runs, so threads cannot overlap)."""
from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

from serve.conftest import copy_artifact, sample, truncated_artifact


def children_alive(pids):
    import psutil

    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def executor_pids(service):
    current = service.manager.current
    return [p.pid for p in current.pool._all]


def test_process_executor_serves_reloads_and_cleans_up(tiny_inference, tmp_path):
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.serve.server import BackgroundServer, ServeConfig, Service

    v1 = copy_artifact(tiny_inference.path, tmp_path / "v1")
    v2 = copy_artifact(tiny_inference.path, tmp_path / "v2")
    bad = truncated_artifact(tiny_inference.path, tmp_path / "bad")
    service = Service(ServeConfig(port=0, executor="process", workers=2, max_batch_size=8),
                      v1)
    xs = np.concatenate([sample(1, seed=i) for i in range(24)])
    expected = load_predictor(tiny_inference).run([xs])[0]
    with BackgroundServer(service) as srv:
        first = executor_pids(service)
        assert len(first) == 2 and len(children_alive(first)) == 2  # prefilled, one per worker
        assert srv.service.manager.current.describe()["backend"] == "paddle_inference"

        def ask(i: int) -> list:
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                r = c.post("/predict", json={"inputs": {"x": xs[i:i + 1].tolist()}})
                assert r.status_code == 200, r.text
                return r.json()["outputs"]["logits"][0]

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(len(xs))))
        np.testing.assert_allclose(np.asarray(answers), expected, atol=1e-5)
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            r = c.post("/reload", json={"artifact": str(bad)})  # fails inside the child
            assert r.status_code == 422 and "truncated" in r.json()["error"], r.text
            assert r.json()["serving"] == "v1"
            r = c.post("/reload", json={"artifact": str(v2)})
            assert r.status_code == 200, r.text
            second = executor_pids(service)
            assert set(second).isdisjoint(first)
            deadline = time.monotonic() + 20
            while children_alive(first) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not children_alive(first)  # the old version's processes ended
            r = c.post("/predict", json={"inputs": {"x": xs[:2].tolist()}})
            assert r.status_code == 200 and r.json()["model_version"] == "v2"
    assert not children_alive(second)  # closing the service ends its processes


@pytest.mark.slow
def test_process_executor_hot_reload_under_load_drops_nothing(tiny_inference, tmp_path):
    from paddleopt.serve.loadgen import run_load
    from paddleopt.serve.server import BackgroundServer, ServeConfig, Service

    versions = [copy_artifact(tiny_inference.path, tmp_path / f"v{i}") for i in (1, 2)]
    body = json.dumps({"inputs": {"x": sample(1).tolist()}}).encode()
    service = Service(ServeConfig(port=0, executor="process", workers=2, max_batch_size=8),
                      versions[0])
    with BackgroundServer(service) as srv:
        box = {}
        loader = threading.Thread(target=lambda: box.update(result=run_load(
            srv.url, body, concurrency=16, max_requests=100000, max_seconds=25.0,
            parse_version=True)))
        loader.start()
        time.sleep(0.5)
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            for i in range(3):
                r = c.post("/reload", json={"artifact": str(versions[(i + 1) % 2])})
                assert r.status_code == 200, r.text
        loader.join(120)
        result = box["result"]
        assert result.failed == 0, result.summary()
        assert len(result.versions) >= 2, result.versions


def test_a_dead_executor_process_is_restarted_on_its_next_run(tiny_inference):
    import os
    import signal

    from paddleopt.serve.procpool import ProcessPredictor

    predictor = ProcessPredictor(tiny_inference.path, "paddle_inference", {"threads": 1})
    try:
        x = sample(2)
        first = predictor.run([x])[0]
        dead = predictor.pid
        os.kill(dead, signal.SIGKILL)
        predictor._proc.wait(30)
        again = predictor.run([x])[0]  # a new child loads the model and runs
        np.testing.assert_allclose(again, first, atol=1e-6)
        assert predictor.pid != dead and predictor.describe()["restarts"] == 1
    finally:
        predictor.close()
    assert predictor._proc.poll() is not None
