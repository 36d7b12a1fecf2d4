"""Run a predictor in a child process (``paddleopt serve --executor process``).

Why: Paddle Inference 2.6.2's Python binding holds the GIL for the whole ``predictor.run()``
on CPU builds (its pybind ``run`` releases it only when compiled for Ascend). In the server
process, two worker threads on two predictor clones therefore run one after the other, and
while a batch runs, the HTTP event loop cannot read, parse or answer anything: the server uses
at most one core however many workers it has. A child process per worker runs the model
outside the server's GIL; the worker thread waits on a pipe (which releases the GIL) and the
arrays travel pickled over a socketpair (~0.1 ms for a 32x784 float32 batch).

``ProcessPredictor`` looks like any ``Predictor`` (``run``, ``backend``, ``describe``), so the
pool, cache, hot reload and probe work unchanged: ``clone()`` is not supported, so the pool
starts another process for each worker, and ``close()`` ends the child (the pool calls it
when the model is unloaded). A child whose parent dies sees EOF and exits; a child that dies
(OOM killer, a native crash) fails the batch it was running with a 500 and is started again
on its predictor's next run.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError


class ProcessPredictor:
    """One predictor loaded and run in its own Python process."""

    def __init__(self, artifact_path: str | Path, backend: str | None,
                 options: dict[str, Any] | None = None, start_timeout_s: float = 600.0) -> None:
        self.artifact_path = str(artifact_path)
        self.backend_name = backend
        self.options = dict(options or {})
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self.closed = False
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        artifact_path, backend, start_timeout_s = (self.artifact_path, self.backend_name,
                                                   self.start_timeout_s)
        parent, child = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # paddleopt's parent: importable
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])]))
        try:
            # stdout goes nowhere: Paddle's native code prints there, and the server's stdout
            # carries the "serving ... on http://" line that scripts parse. stderr is shared.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "paddleopt.serve.procpool", str(child.fileno())],
                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env)
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        self.pid = self._proc.pid
        try:
            self._conn.send((self.artifact_path, backend, self.options))
            if not self._conn.poll(start_timeout_s):
                raise UserError(f"the executor process did not load '{artifact_path}' within "
                                f"{start_timeout_s:.0f} s.", "check the machine's load, or "
                                "use --executor thread.")
            reply = self._recv()
        except BaseException:
            self._stop()
            raise
        if reply[0] != "ready":
            self._stop()
            raise UserError(reply[1], reply[2])
        info = reply[1]
        self.backend = info["backend"]
        self.precision = info["precision"]
        self._describe = info["describe"]

    def _recv(self) -> tuple:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.poll()
            raise UserError(f"the executor process for '{self.artifact_path}' exited"
                            f"{'' if code is None else f' (code {code})'}.",
                            "see the server's stderr for why; the model may have crashed "
                            "the process (out of memory?).") from None

    def run(self, feeds: list[Any]) -> list[Any]:
        with self._lock:  # one run at a time per child, like any predictor
            if self.closed:
                raise UserError("this executor process was closed.", "retry the request.")
            if self._proc.poll() is not None:
                # The child died (OOM killer, a crash in native code): the batch that was
                # running got the error; start a new one for this and later batches.
                self._stop()
                self._start()
                self.restarts += 1
            try:
                self._conn.send(("run", feeds))
            except OSError:
                self._recv()  # raises the "exited" error
            reply = self._recv()
        if reply[0] == "ok":
            return reply[1]
        raise UserError(reply[1], reply[2])

    def clone(self) -> ProcessPredictor:
        # Another process is a full load, not a cheap clone: let the pool call its factory.
        raise NotImplementedError("a process predictor is not cloned; start another")

    def describe(self) -> dict[str, Any]:
        return {**self._describe, "executor": "process", "pid": self.pid,
                "restarts": self.restarts}

    @property
    def inputs(self) -> list[Any]:
        return []

    def close(self, timeout: float = 5.0) -> None:
        if self.closed:
            return
        self.closed = True
        # A run still in flight (its requests timed out and let the model go) finishes first.
        locked = self._lock.acquire(timeout=60)
        try:
            self._stop(timeout)
        finally:
            if locked:
                self._lock.release()

    def _stop(self, timeout: float = 5.0) -> None:
        try:
            self._conn.send(("exit",))
        except (OSError, ValueError):
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._conn.close()

    def __del__(self) -> None:  # a forgotten predictor must not leave its process behind
        try:
            if not self.closed and self._proc.poll() is None:
                self._proc.kill()
        except Exception:
            pass


def _child(fd: int) -> int:
    conn = Connection(fd)
    try:
        path, backend, options = conn.recv()
    except EOFError:
        return 0
    try:
        from paddleopt.artifact import Artifact
        from paddleopt.deploy.predictor import load_predictor

        predictor = load_predictor(Artifact.open(path), backend, options)
        describe = predictor.describe()
    except Exception as exc:
        conn.send(("error", *_explain(exc)))
        return 1
    conn.send(("ready", {"backend": predictor.backend, "precision": predictor.precision,
                         "describe": {k: v for k, v in describe.items() if k != "summary"}}))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server went away
            return 0
        if message[0] != "run":
            return 0
        try:
            outputs = predictor.run(message[1])
        except Exception as exc:
            conn.send(("error", *_explain(exc)))
            continue
        conn.send(("ok", outputs))


def _explain(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, UserError):
        return exc.message, exc.fix
    return f"{type(exc).__name__}: {exc}", ""


if __name__ == "__main__":
    raise SystemExit(_child(int(sys.argv[1])))
