"""The compression configs: every one plans (fast); every one runs end to end, shrunk (slow)."""
from __future__ import annotations

import json

import pytest

from conftest import REPO, run_cli

CONFIGS = ["mnist_prune", "mnist_distill", "mnist_ptq", "mnist_qat", "mnist_prune_distill_ptq"]

# Tiny everything: 600 training images, 200 test images, a narrow network, a few steps.
SHRINK = ["-o", "data.train_subset=600", "-o", "data.eval_subset=200",
          "-o", "data.batch_size=32", "-o", "train.epochs=1",
          "-o", "model.kwargs.widths=[8,16,16]", "-o", "evaluate.eval_samples=200",
          "-o", "evaluate.iters=5", "-o", "evaluate.warmup=1", "-o", "evaluate.max_seconds=0.5"]
STEPS = "finetune.max_steps_per_epoch=3"
PER_CONFIG = {
    "mnist_prune": [f"prune.{STEPS}", "prune.sensitivity_samples=50"],
    "mnist_distill": [f"student.{STEPS}", f"student_no_teacher.{STEPS}",
                      "student.finetune.epochs=1", "student_no_teacher.finetune.epochs=1"],
    "mnist_ptq": ["ptq.calibration.count=64", "ptq.evaluation.count=100",
                  "ptq.sensitivity_samples=50", "ptq.latency.iters=5", "ptq.latency.rounds=1",
                  "ptq.latency.max_seconds=0.3", f"ptq.qat.{STEPS}"],
    "mnist_qat": [f"qat.{STEPS}", "qat.latency.iters=5"],
    "mnist_prune_distill_ptq": [f"distill.{STEPS}", "ptq.calibration.count=64",
                                "ptq.evaluation.count=100", "ptq.sensitivity_samples=50",
                                "ptq.latency.iters=5", "ptq.latency.rounds=1",
                                f"ptq.qat.{STEPS}"],
}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_plans(name):
    proc = run_cli("plan", "-c", f"configs/{name}.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert name in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_runs_shrunk(name, tmp_path):
    work = tmp_path / "work"
    extra = [arg for o in PER_CONFIG[name] for arg in ("-o", o)]
    proc = run_cli("run", "-c", f"configs/{name}.yaml", "-o", f"work_dir={work}", *SHRINK,
                   *extra, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((work / "report.json").read_text())
    stages = {row["stage"]: row for row in report["stages"]}
    targets = {row["variant"] for row in report["deployments"]}
    assert len(targets) >= 2
    if "prune" in stages:
        m = stages["prune"]["metrics"]
        assert m["flops_after"] < m["flops_before"] and m["params_after"] < m["params_before"]
    for sid in ("ptq", "qat"):
        if sid in stages:
            assert stages[sid]["precision"] == "int8"
            assert stages[sid]["checks"]["int8"]["int8_kernels"] > 0
    if "ptq" in stages:
        assert (work / stages["ptq"]["folder"] / "candidates.png").is_file()
        assert "candidates.png" in (work / "report.md").read_text()
    assert (REPO / "configs" / f"{name}.yaml").is_file()
