"""A default run's log holds paddleopt's lines only: no PaddleSlim bars or INFO log, no glog,
no ANSI oneDNN pass summaries, no setuptools warning (`-v` lets them through)."""
from __future__ import annotations

import re

import yaml

from conftest import run_cli, tiny_config

NOISE = re.compile(r"\x1b\[|^[IWEF]\d{4} |New Executor|Run batch|deprecated|distutils|"
                   r"-INFO:|-WARNING:|quantized \d+ ")


def test_default_run_log_has_no_third_party_noise(tmp_path):
    config = tiny_config(tmp_path / "work")
    config["stages"]["train"]["epochs"] = 1
    # ptq brings PaddleSlim (bars, logs) and an INT8 target the oneDNN pass summaries
    config["stages"]["ptq"] = {"input": "export", "calibration": {"count": 64},
                               "verify_int8": False}
    config["evaluate"]["batch_sizes"] = [1]
    config["evaluate"]["targets"] = [{"name": "pi", "backend": "paddle_inference",
                                      "artifact": "export"},
                                     {"name": "pi-int8", "backend": "paddle_inference",
                                      "artifact": "ptq"}]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    proc = run_cli("run", "-c", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    noise = [line for line in (proc.stdout + proc.stderr).splitlines() if NOISE.search(line)]
    assert noise == []
    stray = [line for line in proc.stderr.splitlines() if not line.startswith("[paddleopt] ")]
    assert stray == []
    assert "[ptq] chosen" in proc.stderr and "points" in proc.stderr  # the PTQ log is there


def test_doctor_prints_no_setuptools_warning():
    proc = run_cli("doctor")
    assert proc.returncode == 0
    assert "distutils" not in proc.stderr, proc.stderr
