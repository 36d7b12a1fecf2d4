"""configs/*_deploy.yaml end to end, shrunk with -o: every conversion, its parity, the report."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli

SHRINK = ["-o", "train.epochs=1", "-o", "data.train_subset=1000", "-o", "data.batch_size=50",
          "-o", "data.eval_subset=200", "-o", "evaluate.iters=5", "-o", "evaluate.warmup=1",
          "-o", "evaluate.max_seconds=0.5", "-o", "evaluate.eval_samples=200",
          "-o", "evaluate.batch_sizes=[1]"]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["quickstart_deploy", "mobilenet_v2_deploy"])
def test_deploy_config(config, tmp_path):
    work = tmp_path / "work"
    proc = run_cli("run", "-c", f"configs/{config}.yaml", "-o", f"work_dir={work}", *SHRINK,
                   timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifests = {p.name: json.loads((p / "manifest.json").read_text())
                 for p in work.iterdir() if (p / "manifest.json").is_file()}
    assert set(manifests) == {"01_train", "02_export", "03_to_onnx", "04_to_lite_arm",
                              "05_to_lite_x86", "06_ptq", "07_to_lite_arm_int8"}
    onnx, arm, x86 = (manifests[k]["checks"] for k in ("03_to_onnx", "04_to_lite_arm",
                                                       "05_to_lite_x86"))
    assert onnx["parity_onnxruntime_vs_paddle_inference_max_abs_diff"] <= 1e-4
    assert x86["parity_lite_vs_paddle_inference_max_abs_diff"] <= 1e-4
    assert arm["lite"]["target"] == "arm" and arm["nb_size_bytes"] > 0
    # INT8: the PTQ model is int8, and opt chose int8 kernels for the ARM .nb (calib ops)
    assert manifests["06_ptq"]["precision"] == "int8"
    arm_int8 = manifests["07_to_lite_arm_int8"]["checks"]
    assert arm_int8["lite"]["int8_kernels"] and arm_int8["nb_size_bytes"] < arm["nb_size_bytes"]
    if config.startswith("mobilenet"):
        assert arm["lite"]["compat_rewrite"]["relu6.threshold"] > 0
    report = json.loads((work / "report.json").read_text())
    accuracy = {r["variant"]: r["accuracy"] for r in report["deployments"]}
    assert {"pi-onednn", "ort", "lite-x86", "pi-onednn-int8"} <= set(accuracy)
    fp32 = [v for k, v in accuracy.items() if k != "pi-onednn-int8"]
    assert max(fp32) - min(fp32) <= 0.01  # the same fp32 model everywhere
    assert accuracy["pi-onednn-int8"] >= accuracy["pi-onednn"] - 0.03  # tiny calibration set
