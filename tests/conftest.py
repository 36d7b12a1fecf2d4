"""Shared fixtures: a tiny trained pipeline built once per session, markers, CLI runner."""
from __future__ import annotations

import gzip  # noqa: F401  - before paddle (see paddleopt.utils.imports.import_paddle)
import os
import subprocess
import sys
import time
import zlib  # noqa: F401
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long end-to-end runs (make test-all)")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and paddlepaddle-gpu")
    # Paddle 2.6 and its dependencies emit deprecation noise on every call; keep the output
    # readable (our own warnings are UserWarnings and still show).
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")


def gpu_available() -> bool:
    """The same check production uses before configuring a GPU predictor."""
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    return bool(paddle.is_compiled_with_cuda()) and paddle.device.cuda.device_count() > 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("gpu" in item.keywords for item in items) and not gpu_available():
        skip = pytest.mark.skip(reason="no CUDA GPU / paddlepaddle-gpu on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def tiny_config(work_dir: Path, **overrides: object) -> dict:
    """A pipeline that trains LeNet on sklearn digits for one quick epoch, then exports."""
    config = {
        "name": "tiny",
        "work_dir": str(work_dir),
        "seed": 7,
        "model": {"arch": "lenet", "num_classes": 10, "in_channels": 1},
        "data": {"dataset": "digits", "batch_size": 32, "eval_batch_size": 128},
        "stages": {
            "train": {"epochs": 2, "optimizer": {"name": "adam", "lr": 0.01},
                      "progress_bar": False},
            "export": {},
        },
        "evaluate": {"batch_sizes": [1, 8], "warmup": 2, "iters": 10, "max_seconds": 1.0,
                     "targets": [{"name": "eager", "backend": "eager"},
                                 {"name": "pi", "backend": "paddle_inference"}]},
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """RunResult of the tiny pipeline: artifacts['train'] (checkpoint), ['export'] (inference)."""
    from paddleopt import api

    work_dir = tmp_path_factory.mktemp("tiny_run")
    return api.run(tiny_config(work_dir))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run):
    return tiny_run.artifacts["train"]


@pytest.fixture(scope="session")
def tiny_inference(tiny_run):
    return tiny_run.artifacts["export"]


DEPLOY_STAGES = {
    "to_onnx": {"input": "export"},
    "to_lite_arm": {"type": "to_lite", "input": "export", "target": "arm"},
    "to_lite_x86": {"type": "to_lite", "input": "export", "target": "x86"},
}


@pytest.fixture(scope="session")
def tiny_deploy_run(tmp_path_factory: pytest.TempPathFactory):
    """The tiny pipeline plus every conversion (configs/*_deploy.yaml's stages): artifacts
    'export', 'to_onnx', 'to_lite_arm', 'to_lite_x86' in one work dir."""
    from paddleopt import api

    config = tiny_config(tmp_path_factory.mktemp("tiny_deploy"))
    config["stages"].update(DEPLOY_STAGES)
    return api.run(config, evaluate=False)


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m paddleopt ...` in a subprocess (what a user's shell does)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "paddleopt", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@contextmanager
def serve_process(*args: str, startup_seconds: float = 120) -> Iterator[str]:
    """Start `paddleopt serve ... --port 0` as a user would and yield its printed URL;
    the process is terminated on exit."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "paddleopt", "serve", *args, "--port", "0"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + startup_seconds
        line = ""
        while " on http://" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "serve did not print its URL in time"
        yield line.split(" on ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(30)
