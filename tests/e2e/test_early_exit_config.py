"""configs/quickstart_early_exit.yaml: plans (fast); runs end to end shrunk (slow): the
early-exit artifact with its PI/ONNX/Lite segments, evaluated next to the single-exit model."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli

SHRINK = ["-o", "train.epochs=1", "-o", "data.train_subset=1000", "-o", "data.batch_size=50",
          "-o", "data.eval_subset=200", "-o", "evaluate.iters=5", "-o", "evaluate.warmup=1",
          "-o", "evaluate.max_seconds=0.5", "-o", "evaluate.eval_samples=200",
          "-o", "evaluate.batch_sizes=[1]", "-o", "early_exit.finetune.max_steps_per_epoch=10",
          "-o", "early_exit.calibration_samples=200", "-o", "early_exit.max_drop=2.0"]


def test_early_exit_config_plans():
    proc = run_cli("plan", "-c", "configs/quickstart_early_exit.yaml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "early_exit" in proc.stdout


@pytest.mark.slow
def test_early_exit_config_runs_shrunk(tmp_path):
    work = tmp_path / "work"
    proc = run_cli("run", "-c", "configs/quickstart_early_exit.yaml", "-o", f"work_dir={work}",
                   *SHRINK, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((work / "03_early_exit" / "manifest.json").read_text())
    info = manifest["early_exit"]
    assert set(info["segments"]) == {"inference", "onnx", "lite"}
    assert manifest["checks"]["early_exit_parity"]["max_abs_diff"] <= 1e-4
    for folder in info["segments"]["lite"]:
        lite = json.loads((work / "03_early_exit" / folder / "manifest.json").read_text())
        assert lite["checks"]["parity_lite_vs_paddle_inference_max_abs_diff"] <= 1e-4
    report = json.loads((work / "report.json").read_text())
    rows = {r["variant"]: r for r in report["deployments"]}
    assert "early_exit" in rows["pi-early-exit"] and "early_exit" not in rows["pi-single-exit"]
