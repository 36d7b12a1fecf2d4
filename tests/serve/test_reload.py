"""Hot reload over HTTP under concurrent load (0 failed requests), rejected bad artifacts, the
watched folder, and freeing of old versions."""
from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest

from serve.conftest import copy_artifact, corrupted_artifact, sample, truncated_artifact


@pytest.fixture
def versions(tiny_inference, tmp_path):
    return [copy_artifact(tiny_inference.path, tmp_path / f"v{i}") for i in (1, 2)]


def start(artifact, **settings):
    from paddleopt.serve.server import BackgroundServer, ServeConfig, Service

    return BackgroundServer(Service(ServeConfig(port=0, **settings), artifact))


def test_hot_reloads_under_concurrent_load_drop_nothing(versions):
    from paddleopt.serve.loadgen import run_load

    body = json.dumps({"inputs": {"x": sample(1).tolist()}}).encode()
    # isolate_reloads off: six reloads must fit in the 6 s of load (each isolated reload
    # starts a process; test_fuzz covers that path).
    with start(versions[0], max_batch_size=8, workers=2, isolate_reloads=False) as srv:
        box = {}
        loader = threading.Thread(target=lambda: box.update(result=run_load(
            srv.url, body, concurrency=16, max_requests=20000, max_seconds=6.0,
            parse_version=True)))
        loader.start()
        time.sleep(0.3)
        reloads = 0
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            for i in range(6):
                r = c.post("/reload", json={"artifact": str(versions[(i + 1) % 2])})
                assert r.status_code == 200, r.text
                reloads += 1
                time.sleep(0.25)
        loader.join(60)
        result = box["result"]
        assert result.failed == 0, result.summary()
        assert result.ok > 100
        assert len(result.versions) >= 3, result.versions  # answers came from several versions
        status = srv.service.manager.status()
        assert status["current"]["version"] == f"v{reloads + 1}"
        assert status["reloads_ok"] == reloads
        assert all(v["released"] and v["in_flight"] == 0 for v in status["retired"])
        cache = srv.service.cache.stats()
        assert cache["loaded"] == 1 and cache["evictions"] >= reloads - 1  # old ones freed


@pytest.mark.parametrize("make_bad, words", [
    (corrupted_artifact, "does not match the sha256"),
    (truncated_artifact, "truncated"),
])
def test_bad_artifact_is_rejected_and_the_old_keeps_serving(versions, tmp_path, make_bad,
                                                           words):
    bad = make_bad(versions[0], tmp_path / "bad")
    with start(versions[0]) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/reload", json={"artifact": str(bad)})
        assert r.status_code == 422, r.text
        assert words in r.json()["error"] and r.json()["serving"] == "v1"
        assert "keeps serving" in r.json()["fix"]
        ok = c.post("/predict", json={"inputs": {"x": sample(1).tolist()}})
        assert ok.status_code == 200 and ok.json()["model_version"] == "v1"
        health = c.get("/health").json()
        assert health["reloads_failed"] == 1 and words in health["last_reload_error"]
        missing = c.post("/reload", json={"artifact": str(tmp_path / "nowhere")})
        assert missing.status_code == 422 and "does not exist" in missing.json()["error"]
        assert c.post("/reload", json={}).status_code == 422


def test_reload_api_can_be_disabled(versions):
    with start(versions[0], allow_reload=False) as srv:
        r = httpx.post(srv.url + "/reload", json={"artifact": str(versions[1])})
        assert r.status_code == 403 and "disabled" in r.json()["error"]


def test_a_bad_first_artifact_fails_before_serving(versions, tmp_path):
    from paddleopt.serve.server import ServeConfig, Service
    from paddleopt.utils.errors import UserError

    bad = truncated_artifact(versions[0], tmp_path / "bad")
    with pytest.raises(UserError, match="truncated"):
        Service(ServeConfig(port=0), bad)


def _switch(root, name):
    """The atomic version switch a deploy script does: new symlink, then rename over."""
    tmp = root / "current.tmp"
    os.symlink(name, tmp)
    os.replace(tmp, root / "current")


def test_watched_folder_switches_versions_atomically(versions, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    for v in versions:
        v.rename(root / v.name)
    truncated_artifact(root / "v1", root / "v3")
    _switch(root, "v1")
    with start(None, watch=str(root), watch_interval_s=0.1) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/health").json()["model"]["artifact"].endswith("v1")
        _switch(root, "v2")
        deadline = time.monotonic() + 20
        while not c.get("/health").json()["model"]["artifact"].endswith("v2"):
            assert time.monotonic() < deadline, "watcher did not switch to v2"
            time.sleep(0.1)
        _switch(root, "v3")  # a broken version: rejected, v2 keeps serving
        while srv.service.manager.reloads_failed == 0:
            assert time.monotonic() < deadline + 20, "watcher did not try v3"
            time.sleep(0.1)
        health = c.get("/health").json()
        assert health["model"]["artifact"].endswith("v2")
        assert "truncated" in health["last_reload_error"]
        assert c.post("/predict", json={"inputs": {"x": sample(1).tolist()}}).status_code == 200
