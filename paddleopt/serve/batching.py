"""Dynamic batching: queue requests, run them together, split the answers back.

One dispatcher thread forms batches, but only when an executor is free to run one: while all
``workers`` executors are busy, requests pile up in the queue and the next batch takes them all
(batches grow with the load instead of being fixed early). It takes the oldest waiting request,
then adds requests that can share its run (same model version, same non-batch shapes and
dtypes) until the batch has ``max_batch_size`` rows or the oldest request has waited
``max_wait_ms``. Each executor runs on its own predictor from the version's pool, and every
request gets its own rows of each output.
``max_batch_size: 1`` is plain one-request-per-run serving.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("paddleopt.serve")


class Overloaded(Exception):
    """The queue is full: the client should retry later (HTTP 503)."""


@dataclass(eq=False)
class Job:
    version: Any  # ModelVersion (anything with .number and .pool)
    feeds: list[np.ndarray]
    rows: int
    key: tuple
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchResult:
    """What one request gets back."""

    outputs: list[np.ndarray]
    batch_rows: int  # rows in the run this request was part of
    batch_requests: int
    queue_ms: float
    run_ms: float


def batch_key(version: Any, feeds: list[np.ndarray]) -> tuple:
    return (version.number, tuple((a.shape[1:], a.dtype.str) for a in feeds))


class DynamicBatcher:
    def __init__(self, max_batch_size: int = 32, max_wait_ms: float = 2.0, workers: int = 2,
                 max_queue: int = 1024,
                 on_batch: Callable[[int, int, float], None] | None = None) -> None:
        if max_batch_size < 1 or workers < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size, workers, max_queue >= 1 and max_wait_ms >= 0")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1e3
        self.workers = workers
        self.max_queue = max_queue
        self.on_batch = on_batch  # (rows, requests, run_ms) after every run
        self._pending: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._ready: queue.Queue = queue.Queue()
        self._idle = threading.Semaphore(workers)  # executors free to take a batch
        self._closed = False
        self._threads = [threading.Thread(target=self._dispatch, name="paddleopt-batcher",
                                          daemon=True)]
        self._threads += [threading.Thread(target=self._execute_loop, daemon=True,
                                           name=f"paddleopt-worker-{i}") for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # -- producer side ------------------------------------------------------------------------
    def submit(self, version: Any, feeds: list[np.ndarray]) -> Future:
        """Queue one request (its feeds share the first dimension); returns a Future of
        ``BatchResult``."""
        rows = int(feeds[0].shape[0])
        job = Job(version, feeds, rows, batch_key(version, feeds))
        with self._cond:
            if self._closed:
                raise Overloaded("the server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise Overloaded(f"{len(self._pending)} requests are already waiting")
            self._pending.append(job)
            self._cond.notify()
        return job.future

    @property
    def queued(self) -> int:
        return len(self._pending)

    # -- dispatcher ----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            self._idle.acquire()  # wait for a free executor; meanwhile the queue fills
            batch = self._collect()
            if batch is None:
                for _ in range(self.workers):
                    self._ready.put(None)
                return
            self._ready.put(batch)

    def _collect(self) -> list[Job] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None  # closed and drained
            first = self._pending.popleft()
            batch, rows = [first], first.rows
            deadline = first.enqueued + self.max_wait_s
            while rows < self.max_batch_size:
                rows = self._take_matching(first.key, batch, rows)
                remaining = deadline - time.perf_counter()
                if rows >= self.max_batch_size or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _take_matching(self, key: tuple, batch: list[Job], rows: int) -> int:
        keep: collections.deque[Job] = collections.deque()
        while self._pending:
            job = self._pending.popleft()
            if job.key == key and rows + job.rows <= self.max_batch_size:
                batch.append(job)
                rows += job.rows
            else:
                keep.append(job)
        self._pending.extendleft(reversed(keep))
        return rows

    # -- executors -----------------------------------------------------------------------------
    def _execute_loop(self) -> None:
        while True:
            batch = self._ready.get()
            if batch is None:
                return
            try:
                self._execute(batch)
            finally:
                self._idle.release()

    def _execute(self, batch: list[Job]) -> None:
        # A request that timed out while queued was cancelled by its client: skip it.
        batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not batch:
            return
        started = time.perf_counter()
        version = batch[0].version
        rows = sum(j.rows for j in batch)
        try:
            n_inputs = len(batch[0].feeds)
            feeds = [batch[0].feeds[i] if len(batch) == 1 else
                     np.concatenate([j.feeds[i] for j in batch]) for i in range(n_inputs)]
            with version.pool.acquire() as predictor:
                t_run = time.perf_counter()
                outputs = predictor.run(feeds)
                run_ms = (time.perf_counter() - t_run) * 1e3
        except BaseException as exc:  # every waiting request learns why
            for job in batch:
                _resolve(job.future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if self.on_batch is not None:
            try:
                self.on_batch(rows, len(batch), run_ms)
            except Exception:  # metrics must never fail a request
                log.exception("batch observer failed")
        offset = 0
        for job in batch:
            mine = [out[offset:offset + job.rows]
                    if np.ndim(out) > 0 and np.shape(out)[0] == rows else out
                    for out in outputs]
            offset += job.rows
            _resolve(job.future, BatchResult(mine, rows, len(batch),
                                             (started - job.enqueued) * 1e3, run_ms))

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)


def _resolve(future: Future, value: Any) -> None:
    """Set a result or exception unless the future is already settled."""
    try:
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)
    except InvalidStateError:
        pass
