"""plan and doctor from the command line; the tools/ shims behave like the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_plan_prints_stages_and_does_no_work(cli, tmp_path):
    proc = cli("plan", "-c", "configs/quickstart.yaml", "-o", f"work_dir={tmp_path / 'w'}")
    assert proc.returncode == 0, proc.stderr
    assert "01_train" in proc.stdout and "02_export" in proc.stdout
    assert "evaluate pi-onednn on paddle_inference" in proc.stdout
    assert not (tmp_path / "w").exists()


def test_doctor_reports_stack_extras_and_cpu(cli):
    proc = cli("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["versions"]["paddlepaddle"] == "2.6.2"
    assert info["extras"]["core"] == "ok"
    assert info["cpu"]["cores"] >= 1 and isinstance(info["cpu"]["isa"], list)
    assert info["gpu"]["paddle_compiled_with_cuda"] is False


def test_tools_plan_equals_cli_plan(cli):
    via_cli = cli("plan", "-c", "configs/quickstart.yaml", "-o", "train.epochs=1")
    via_tool = subprocess.run([sys.executable, "tools/run.py", "-c", "configs/quickstart.yaml",
                               "-o", "train.epochs=1", "--plan-only"], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    assert via_tool.returncode == 0 and via_tool.stdout == via_cli.stdout
