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
