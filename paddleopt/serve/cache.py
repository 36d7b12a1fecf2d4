"""Load an artifact once and share its predictors: a per-artifact pool, and a bounded cache.

* ``PredictorPool``: the first predictor is loaded from disk, the others are ``clone()``\\ s of
  it (Paddle Inference shares the weights between clones; a backend that cannot clone loads
  another copy). A predictor is used by one thread at a time, so a pool holds up to ``size``
  predictors: one per worker thread.
* ``PredictorCache``: loaded artifacts keyed by (folder, manifest digest, backend, options),
  least recently used first out when more than ``max_models`` are loaded. An entry in use
  (a request is running on it) is never evicted; it is freed when its last user leaves.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("paddleopt.serve")


class PredictorPool:
    """Up to ``size`` predictors of one loaded model, handed to one thread at a time."""

    def __init__(self, factory: Callable[[], Any], size: int = 2, prefill: bool = False) -> None:
        """``prefill``: make all ``size`` predictors now (in parallel) instead of on first
        concurrent use; for predictors that take seconds to make (executor processes)."""
        if size < 1:
            raise ValueError("pool size must be >= 1")
        self.size = size
        self._factory = factory
        self._base = factory()  # loading happens here, once
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._idle.put(self._base)
        self._created = 1
        self._lock = threading.Lock()
        self.cloned = 0  # predictors made by clone()
        self.loaded = 1  # predictors loaded from disk (clone not supported)
        self.closed = False
        self._all = [self._base]  # every predictor made, to close them on unload
        if prefill and size > 1:
            self._prefill()

    def _prefill(self) -> None:
        made: list[Any] = []
        errors: list[BaseException] = []

        def make() -> None:
            try:
                made.append(self._new())
            except BaseException as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=make, daemon=True) for _ in range(self.size - 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for predictor in made:
            self._idle.put(predictor)
        self._created += len(made)
        if errors:
            self.close()
            raise errors[0]

    @property
    def base(self) -> Any:
        return self._base

    def _new(self) -> Any:
        try:
            predictor = self._base.clone()
            self.cloned += 1
        except NotImplementedError:
            predictor = self._factory()
            self.loaded += 1
        with self._lock:
            self._all.append(predictor)
        return predictor

    @contextlib.contextmanager
    def acquire(self, timeout: float | None = None) -> Iterator[Any]:
        """A predictor for this thread; blocks while all ``size`` predictors are busy."""
        if self.closed:
            raise RuntimeError("this model was unloaded")
        try:
            predictor = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._created < self.size
                if grow:
                    self._created += 1
            if grow:
                try:
                    predictor = self._new()
                except BaseException:
                    with self._lock:
                        self._created -= 1
                    raise
            else:
                predictor = self._idle.get(timeout=timeout)
        try:
            yield predictor
        finally:
            self._idle.put(predictor)

    def close(self) -> None:
        """Drop every predictor (Paddle frees a predictor's memory when it is destroyed)."""
        self.closed = True
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
        with self._lock:
            made, self._all = self._all, []
        for predictor in made:  # executor processes end here; in-process ones are collected
            close = getattr(predictor, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing a predictor failed")
        self._base = None
        del made
        gc.collect()

    def stats(self) -> dict[str, Any]:
        return {"size": self.size, "created": self._created, "cloned": self.cloned,
                "loaded": self.loaded, "idle": self._idle.qsize()}


@dataclass
class CacheEntry:
    key: str
    path: Path
    artifact: Any
    pool: PredictorPool
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    users: int = 0
    evicted: bool = False


def cache_key(artifact: Any, backend: str, options: dict[str, Any]) -> str:
    """Same folder + same manifest bytes + same backend options = the same loaded model."""
    digest = artifact.digest()
    blob = json.dumps({"path": str(Path(artifact.path).resolve()), "digest": digest,
                       "backend": backend, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class PredictorCache:
    """Loaded artifacts, at most ``max_models`` of them, least recently used evicted first."""

    def __init__(self, max_models: int = 1, pool_size: int = 2,
                 loader: Callable[[Any, str | None, dict], Any] | None = None,
                 prefill: bool = False) -> None:
        if max_models < 1:
            raise ValueError("max_models must be >= 1")
        self.max_models = max_models
        self.pool_size = pool_size
        self.prefill = prefill
        self._loader = loader
        self._entries: collections.OrderedDict[str, CacheEntry] = collections.OrderedDict()
        self._lock = threading.RLock()
        self.hits = self.misses = self.evictions = 0

    def _load(self, artifact: Any, backend: str | None, options: dict) -> Any:
        if self._loader is not None:
            return self._loader(artifact, backend, options)
        from paddleopt.deploy.predictor import load_predictor

        return load_predictor(artifact, backend, options)

    def checkout(self, artifact: Any, backend: str | None = None,
                 options: dict[str, Any] | None = None) -> CacheEntry:
        """The entry for ``artifact`` (loaded now if needed), marked in use until ``checkin``."""
        from paddleopt.deploy.predictor import default_backend

        backend = backend or default_backend(artifact.kind)
        options = dict(options or {})
        key = cache_key(artifact, backend, options)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.hits += 1
                self._entries.move_to_end(key)
                entry.users += 1
                return entry
        # Load outside the lock: a slow load must not block requests on other models.
        self.misses += 1
        started = time.perf_counter()
        pool = PredictorPool(lambda: self._load(artifact, backend, options), self.pool_size,
                             prefill=self.prefill)
        entry = CacheEntry(key, Path(artifact.path), artifact, pool,
                           load_seconds=time.perf_counter() - started, users=1)
        with self._lock:
            raced = self._entries.get(key)
            if raced is not None:  # another thread loaded it meanwhile: keep one
                pool.close()
                raced.users += 1
                self._entries.move_to_end(key)
                return raced
            self._entries[key] = entry
            self._evict_over_limit()
        return entry

    def checkin(self, entry: CacheEntry) -> None:
        with self._lock:
            entry.users -= 1
            if entry.users <= 0 and (entry.evicted or entry.key not in self._entries):
                self._free(entry)
            else:
                self._evict_over_limit()

    def discard(self, entry: CacheEntry) -> None:
        """Remove ``entry`` now (freed as soon as nobody uses it)."""
        with self._lock:
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
                self.evictions += 1
            entry.evicted = True
            if entry.users <= 0:
                self._free(entry)

    def _evict_over_limit(self) -> None:
        for key in list(self._entries):
            if len(self._entries) <= self.max_models:
                return
            entry = self._entries[key]
            if entry.users > 0:
                continue  # in use: evicted when released
            del self._entries[key]
            self.evictions += 1
            entry.evicted = True
            self._free(entry)

    @staticmethod
    def _free(entry: CacheEntry) -> None:
        if not entry.pool.closed:
            log.info("unloading %s", entry.path)
            entry.pool.close()

    def clear(self) -> None:
        with self._lock:
            for entry in list(self._entries.values()):
                entry.evicted = True
                if entry.users <= 0:
                    self._free(entry)
            self._entries.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"max_models": self.max_models, "loaded": len(self._entries),
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions,
                    "models": [{"path": str(e.path), "users": e.users, **e.pool.stats()}
                               for e in self._entries.values()]}
