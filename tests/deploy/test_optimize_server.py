"""`paddleopt optimize --target server-cpu` ends in `paddleopt deploy`'s choice: PaddleSlim PTQ,
ONNX fp32/int8, NNCF int8 of the ONNX model, every candidate measured by deploy on the
held-out calibration samples, one report and deployment.json. Fast version on the tiny CNN
(the real PP-OCR direction classifier: tests/source/test_ocr_cli.py, slow)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from paddleopt import oneshot
from paddleopt.deploy import auto
from tiny_models import make_cnn, save_inference

pytest.importorskip("openvino")
pytest.importorskip("nncf")


def test_optimize_server_cpu_writes_deploys_choice(tmp_path):
    model = save_inference(make_cnn(seed=4), tmp_path / "model")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((40, 1, 28, 28)).astype("float32"))
    work = tmp_path / "opt"
    summary = oneshot.optimize(model, tmp_path / "calib.npz", "server-cpu", work,
                               overrides=["ptq.candidates=[{algo: abs_max}]"], threads=1,
                               deploy={"rounds": 1, "seconds": 0.1})
    assert "bench" not in summary  # deploy measured; optimize did not time anything itself
    names = {c["name"] for c in summary["deploy"]["candidates"]}
    assert {"pi-t1", "ort-t1", "ov-t1", "ov-nncf-int8-t1"} <= names
    if summary["quantize"]["kept"] == "int8" and "int8" in summary["conversions"]:
        assert {"pi-int8-t1", "ov-int8-t1"} <= names
    nncf = summary["nncf"]
    assert "Convolution" in nncf["openvino_int8_layers"]
    assert 0 <= nncf["int8_agreement_vs_fp32"] <= 1
    evaluation = summary["deploy"]["evaluation"]
    assert evaluation["samples"] == 20 and "held-out" in evaluation["source"]  # 20 calibrate
    written = json.loads((work / auto.DEPLOYMENT_FILE).read_text())
    assert written["winner"] == summary["deploy"]["winner"]
    winner = next(c for c in written["candidates"] if c["name"] == written["winner"])
    assert winner["within_budget"] and winner["agreement"] >= 0.99
    report = (work / "optimize.md").read_text()
    assert "## Deployment (paddleopt deploy)" in report and written["winner"] in report
    assert "bench --matrix" not in report
    path, backend, options, used = auto.resolve(work / auto.DEPLOYMENT_FILE, None, None)
    assert used is not None and backend == written["backend"] and options == written["options"]
