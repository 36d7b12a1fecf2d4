"""Killing a run mid-train and rerunning with --resume redoes only the unfinished stage."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from conftest import REPO, tiny_config


def start_run(config_path, *extra):
    return subprocess.Popen([sys.executable, "-m", "paddleopt", "run", "-c", str(config_path),
                             *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_kill_during_train_then_resume(tmp_path):
    work = tmp_path / "work"
    cfg = tiny_config(work)
    cfg["stages"]["train"]["epochs"] = 6
    cfg["evaluate"]["targets"] = []
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    proc = start_run(path)
    state = work / ".01_train.tmp" / "checkpoints" / "state.json"  # written after epoch 1
    deadline = time.time() + 240
    while not state.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert state.is_file(), "training never wrote an epoch checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    # The half-written stage is a hidden temp folder, never a finished-looking 01_train.
    assert not (work / "01_train").exists()
    assert not (work / "02_export").exists()

    out = subprocess.run([sys.executable, "-m", "paddleopt", "run", "-c", str(path), "--resume"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming after epoch" in out.stderr + out.stdout
    assert (work / "01_train" / "manifest.json").is_file()
    assert (work / "02_export" / "manifest.json").is_file()
    assert not (work / ".01_train.tmp").exists()

    # Exact: the same weights, bit for bit, as a run that was never killed, and a manifest
    # that covers all 6 epochs.
    import json

    import numpy as np

    from paddleopt import api
    from paddleopt.utils.imports import import_paddle

    straight = tmp_path / "straight"
    api.run(dict(cfg, work_dir=str(straight)), until="train", evaluate=False)
    paddle = import_paddle()
    want = paddle.load(str(straight / "01_train" / "model.pdparams"))
    got = paddle.load(str(work / "01_train" / "model.pdparams"))
    assert all(np.array_equal(np.asarray(want[k]), np.asarray(got[k])) for k in want)
    history = json.loads((work / "01_train" / "manifest.json").read_text())["metrics"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]

    # A third run with --resume does no work at all: both fingerprints match.
    again = subprocess.run([sys.executable, "-m", "paddleopt", "run", "-c", str(path),
                            "--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    log = again.stdout + again.stderr
    assert log.count("fingerprint matches, skipping") == 2

    # Changing the export config reruns export only.
    third = subprocess.run([sys.executable, "-m", "paddleopt", "run", "-c", str(path),
                            "--resume", "-o", "export.parity_samples=16"], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr
    log = third.stdout + third.stderr
    assert log.count("fingerprint matches, skipping") == 1
    assert "[export] export:" in log
