"""Multi-process DataLoaders that leave the process's SIGCHLD handling as they found it.

Paddle's multi-process DataLoader installs a process-wide SIGCHLD handler
(``paddle.io.multiprocess_utils._set_SIGCHLD_handler``) the first time workers start, and
never removes it. Once the workers are gone, the next child process of ours that exits
(Lite ``opt`` or paddle2onnx in their subprocesses, a CLI run from a test) makes that handler
take the whole process down with SIGSEGV: a pipeline that trained with ``num_workers > 0``
could die after training. Reproduced by ``tests/data/test_workers.py``.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Iterator


class WorkerLoader:
    """Wraps a ``paddle.io.DataLoader`` with workers; iterating it restores the SIGCHLD
    handler that was in place before, once the iteration ends (or is abandoned)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Any]:
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGCHLD) if in_main else None
        try:
            yield from self.loader
        finally:
            if in_main:
                restore_sigchld(previous)

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # batch_sampler, dataset, ... as before
        return getattr(self.loader, name)


def restore_sigchld(previous: Any) -> None:
    """Put ``previous`` back and let Paddle install its handler again for the next workers."""
    from paddle.io import multiprocess_utils

    signal.signal(signal.SIGCHLD, previous if previous is not None else signal.SIG_DFL)
    multiprocess_utils._SIGCHLD_handler_set = False
