"""Silence what C++ code prints straight to a file descriptor (std::cout, glog, oneDNN).

Python's ``contextlib.redirect_stdout`` only swaps ``sys.stdout``; Paddle's C++ writes to fd 1
and fd 2 directly. ``fd_silenced`` points the fd at /dev/null for the duration. Output of
other threads to that fd is lost meanwhile, and two overlapping redirects of one fd would
restore it to /dev/null for good, so each fd has one (re-entrant) lock.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_LOCKS = {1: threading.RLock(), 2: threading.RLock()}


@contextlib.contextmanager
def fd_silenced(fd: int, enabled: bool = True) -> Iterator[None]:
    """Send file descriptor ``fd`` (1: stdout, 2: stderr) to /dev/null inside the block."""
    if not enabled:
        yield
        return
    stream = sys.stdout if fd == 1 else sys.stderr
    with _LOCKS[fd]:
        stream.flush()
        saved = os.dup(fd)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
            yield
        finally:
            flush_c_stdio()  # drain C/C++ buffers into /dev/null, not the restored fd
            os.dup2(saved, fd)
            os.close(saved)
            os.close(devnull)


def flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # no libc symbol lookup on this platform: nothing buffered to lose
        pass


def third_party_quiet() -> bool:
    """Whether third-party chatter (PaddleSlim bars and logs, oneDNN pass summaries) is muted:
    always, unless the paddleopt logger is at DEBUG (`paddleopt -v`)."""
    import logging

    return not logging.getLogger("paddleopt").isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def third_party_muted() -> Iterator[None]:
    """Mute fds 1 and 2 for a block of third-party work unless `-v` (see third_party_quiet).
    Only for blocks that print nothing of ours: errors still arrive as exceptions."""
    quiet = third_party_quiet()
    with fd_silenced(1, quiet), fd_silenced(2, quiet):
        yield
