"""Loaders with workers leave SIGCHLD as they found it (see paddleopt.data.workers).

Paddle's multi-process DataLoader left its SIGCHLD handler installed for the life of the
process; in the suite, a later `paddleopt deploy` child process exiting then killed pytest
itself with SIGSEGV (tests/data/test_data.py's loader test followed by tests/deploy/
test_auto.py, every time). These tests pin down the mechanism that prevents it.
"""
from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np

from paddleopt.config.schema import parse
from paddleopt.config.sections import DataConfig
from paddleopt.data.loaders import build_loader
from paddleopt.data.workers import WorkerLoader


class _Zeros:
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> np.ndarray:
        return np.full(3, i, dtype="float32")


def _loader(num_workers: int):
    from paddle.io import Dataset

    class Data(_Zeros, Dataset):
        pass

    cfg = parse(DataConfig, {"dataset": "digits", "batch_size": 4, "num_workers": num_workers,
                             "shuffle": False})
    return build_loader(Data(), cfg, train=True)


def test_worker_loader_restores_sigchld_and_iterates_again() -> None:
    from paddle.io import multiprocess_utils

    before = signal.getsignal(signal.SIGCHLD)
    loader = _loader(num_workers=1)
    assert isinstance(loader, WorkerLoader) and len(loader) == 2
    for _ in range(2):  # a second epoch starts workers (and Paddle's handler) again
        batches = [np.asarray(x) for x in loader]
        assert [b[:, 0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
        assert signal.getsignal(signal.SIGCHLD) == before
        assert multiprocess_utils._SIGCHLD_handler_set is False
    # children of ours that exit, cleanly or not, leave this process alive
    assert subprocess.run([sys.executable, "-c", "import sys; sys.exit(3)"]).returncode == 3
    crashed = subprocess.run([sys.executable, "-c",
                              "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    assert crashed.returncode == -signal.SIGSEGV


def test_an_abandoned_iteration_restores_sigchld_too() -> None:
    before = signal.getsignal(signal.SIGCHLD)
    iterator = iter(_loader(num_workers=1))
    next(iterator)
    iterator.close()  # what a `break` out of a for loop does
    assert signal.getsignal(signal.SIGCHLD) == before


def test_no_workers_means_the_plain_loader() -> None:
    assert not isinstance(_loader(num_workers=0), WorkerLoader)
