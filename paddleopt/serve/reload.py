"""Hot reload: switch the served model without dropping a request.

``ModelManager`` holds the current ``ModelVersion``. A request checks a version out when it is
admitted and in again when its answer is ready, so:

* a request admitted before a switch finishes on the old model, new ones get the new model;
* the old model is released when its last request leaves (freed by the cache right away
  with the default ``max_models: 1``);
* a new artifact is opened, digest-checked, loaded and run once on a probe batch *before*
  the switch; when any of that fails the old model keeps serving and the error is returned;
* with predictors in the server process (``--executor thread``), a reload is first loaded
  and probed in a child process: a file that crashes Paddle's native code (a garbage
  ``model.pdmodel`` segfaults it) kills the child, not the server.

``DirectoryWatcher`` switches versions from a folder instead of an API call: the folder holds
one sub-folder per version and a ``current`` symlink (or a ``CURRENT`` file naming the
sub-folder), changed atomically (``ln -sfn v2 current.tmp && mv -T current.tmp current``).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.serve.cache import CacheEntry, PredictorCache
from paddleopt.utils.errors import UserError

log = logging.getLogger("paddleopt.serve")


@dataclass
class ModelVersion:
    """One loaded artifact as served: requests pin it from admission to answer."""

    number: int
    path: Path
    entry: CacheEntry
    loaded_at: float = field(default_factory=time.time)
    in_flight: int = 0
    retired: bool = False
    released: bool = False

    @property
    def artifact(self) -> Any:
        return self.entry.artifact

    @property
    def manifest(self) -> Any:
        return self.entry.artifact.manifest

    @property
    def pool(self) -> Any:
        return self.entry.pool

    @property
    def name(self) -> str:
        return f"v{self.number}"

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {"version": self.name, "artifact": str(self.path), "kind": m.kind,
                "precision": m.precision, "backend": getattr(self.pool.base, "backend", None)
                if not self.pool.closed else None,
                "inputs": [{"name": s.name, "shape": s.shape, "dtype": s.dtype}
                           for s in m.io.inputs],
                "outputs": [s.name for s in m.io.outputs],
                "preprocess": m.preprocess.get("type"),
                "loaded_at": self.loaded_at, "load_seconds": round(self.entry.load_seconds, 3),
                "in_flight": self.in_flight}


class ModelManager:
    """The served model and its atomic replacement."""

    def __init__(self, cache: PredictorCache, backend: str | None = None,
                 options: dict[str, Any] | None = None, probe: bool = True,
                 default_threads: int | None = None, isolate_reloads: bool = False,
                 shapes: dict[str, Any] | None = None) -> None:
        """``isolate_reloads``: load and probe every model after the first in a child process
        before loading it here (for predictors that live in the server process). ``shapes``:
        the shapes of dynamic inputs (``--shape``), applied to every version loaded."""
        from paddleopt.artifact.shapes import parse_shapes

        self.shapes = parse_shapes(shapes, "--shape") if shapes else {}
        self.cache = cache
        self.isolate_reloads = isolate_reloads
        self.backend = backend
        self.options = dict(options or {})
        self.probe = probe
        self.default_threads = default_threads  # for backends with a `threads` option
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()  # one load at a time
        self._current: ModelVersion | None = None
        self._counter = 0
        self.retired: list[ModelVersion] = []  # kept for /health and tests (small)
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_error: str | None = None

    # -- serving --------------------------------------------------------------------------
    @property
    def current(self) -> ModelVersion | None:
        return self._current

    def checkout(self) -> ModelVersion:
        with self._lock:
            version = self._current
            if version is None:
                raise UserError("no model is loaded.", "load one with POST /reload.")
            version.in_flight += 1
            return version

    def checkin(self, version: ModelVersion) -> None:
        with self._lock:
            version.in_flight -= 1
            release = version.retired and version.in_flight == 0 and not version.released
            if release:
                version.released = True
        if release:
            self._release(version)

    @contextlib.contextmanager
    def use(self) -> Iterator[ModelVersion]:
        version = self.checkout()
        try:
            yield version
        finally:
            self.checkin(version)

    # -- loading --------------------------------------------------------------------------
    def load(self, path: str | Path) -> ModelVersion:
        """Load ``path`` and make it current (the first model, or a reload)."""
        with self._reload_lock:
            try:
                entry = self._prepare(Path(path))
            except Exception as exc:
                self.reloads_failed += 1
                self.last_error = f"{path}: {_message(exc)}"
                log.warning("rejected %s: %s", path, _message(exc))
                raise
            with self._lock:
                self._counter += 1
                version = ModelVersion(self._counter, Path(path), entry)
                old, self._current = self._current, version
                if old is not None:
                    old.retired = True
                    self.retired = (self.retired + [old])[-8:]
                    release = old.in_flight == 0 and not old.released
                    if release:
                        old.released = True
                else:
                    release = False
            self.reloads_ok += old is not None
            self.last_error = None
            # The first load is announced by the CLI's "serving ... on http://" line; a log
            # line here too printed the banner twice. Reloads are worth an info line.
            (log.info if old is not None else log.debug)(
                "serving %s (%s)%s", path, version.name,
                f", replacing {old.name}" if old is not None else "")
        if old is not None and release:
            self._release(old)
        return version

    reload = load

    def _prepare(self, path: Path) -> CacheEntry:
        from paddleopt.artifact import Artifact

        artifact = Artifact.open(path)
        if self.shapes:  # the probe and the warm-up run at these, not at an invented size
            from paddleopt.artifact.shapes import apply_shapes

            apply_shapes(artifact.manifest, self.shapes, "--shape")
        # A corrupted or half-copied file is refused before loading, and so is a manifest
        # without sha256s (it would let any file change go unnoticed).
        artifact.verify()
        if not artifact.manifest.io.inputs:
            raise UserError(f"artifact '{path}' declares no inputs in its manifest.",
                            "serve an artifact written by a paddleopt stage.")
        backend, options = self._backend_options(artifact)
        if self.isolate_reloads and self._current is not None:
            preflight(artifact, backend, options)
        entry = self.cache.checkout(artifact, backend, options)
        shared = entry.users > 1  # the same files are already loaded (and serving)
        try:
            if self.probe:
                with entry.pool.acquire() as predictor:
                    probe(predictor, artifact)
        except Exception:
            self.cache.checkin(entry)
            if not shared:
                self.cache.discard(entry)
            raise
        return entry

    def _backend_options(self, artifact: Any) -> tuple[str, dict[str, Any]]:
        import dataclasses

        from paddleopt.deploy.predictor import backend_module, default_backend

        backend = self.backend or default_backend(artifact.kind)
        options = dict(self.options)
        fields = {f.name for f in dataclasses.fields(backend_module(backend).Options)}
        if self.default_threads and "threads" in fields and "threads" not in options:
            options["threads"] = self.default_threads
        return backend, options

    def _release(self, version: ModelVersion) -> None:
        """The manager's hold on a retired version ends; the cache decides when to free it."""
        self.cache.checkin(version.entry)
        log.info("released %s (%s)", version.name, version.path)

    def close(self) -> None:
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.retired = True
            if current.in_flight == 0 and not current.released:
                current.released = True
                self._release(current)
        self.cache.clear()

    def status(self) -> dict[str, Any]:
        current = self._current
        return {"current": current.describe() if current else None,
                "reloads_ok": self.reloads_ok, "reloads_failed": self.reloads_failed,
                "last_error": self.last_error,
                "retired": [{"version": v.name, "in_flight": v.in_flight,
                             "released": v.released} for v in self.retired]}


def preflight(artifact: Any, backend: str, options: dict[str, Any]) -> None:
    """Load and probe ``artifact`` in a child process first: if Paddle crashes on it, the
    child dies and the reload is refused, instead of the server dying mid-reload."""
    from paddleopt.serve.procpool import ProcessPredictor

    try:
        child = ProcessPredictor(artifact.path, backend, options, start_timeout_s=300)
    except UserError as exc:
        raise UserError(f"the model fails to load: {exc.message}", exc.fix) from None
    try:
        probe(child, artifact)
    finally:
        child.close()


def probe(predictor: Any, artifact: Any) -> None:
    """Run one sample through a freshly loaded model; refuse it when that fails or the
    outputs are not finite (a truncated or mismatched params file often loads fine and
    computes NaN)."""
    from paddleopt.deploy.bench import make_feeds

    from paddleopt.artifact.shapes import dynamic_dim

    feeds = make_feeds(artifact.manifest.io.inputs, 1, dynamic_dim=dynamic_dim(artifact.manifest))
    try:
        outputs = predictor.run(feeds)
    except UserError as exc:
        raise UserError(f"the model loads but fails on a probe input: {exc.message}",
                        exc.fix) from None
    if not outputs:
        raise UserError("the model returned no outputs on a probe input.",
                        "check the artifact's io.outputs and re-export it.")
    for i, out in enumerate(outputs):
        arr = np.asarray(out)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise UserError(f"the model computes non-finite values (output {i}) on a probe "
                            f"input: its weights are corrupt or do not match the graph.",
                            "re-export the model; the old model keeps serving.")


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


class DirectoryWatcher(threading.Thread):
    """Poll ``root/current`` (symlink) or ``root/CURRENT`` (text file) and reload on change."""

    def __init__(self, manager: ModelManager, root: str | Path, interval_s: float = 1.0) -> None:
        super().__init__(name="paddleopt-watch", daemon=True)
        self.manager = manager
        self.root = Path(root)
        self.interval_s = interval_s
        self._halt = threading.Event()
        self.seen: Path | None = None
        self.errors = 0

    def resolve(self) -> Path | None:
        """The version folder the root points at now (None when it points nowhere)."""
        link = self.root / "current"
        if link.exists():
            return link.resolve()
        marker = self.root / "CURRENT"
        if marker.is_file():
            name = marker.read_text(encoding="utf-8").strip()
            if name:
                return (self.root / name).resolve()
        return None

    def initial(self) -> Path:
        target = self.resolve()
        if target is None:
            raise UserError(f"watched folder '{self.root}' has no 'current' symlink and no "
                            f"CURRENT file.", "create one: ln -s v1 current (inside the folder)")
        self.seen = target
        return target

    def check_once(self) -> bool:
        """Reload when the pointer changed; True when a reload was attempted."""
        target = self.resolve()
        if target is None or target == self.seen:
            return False
        self.seen = target  # a rejected version is not retried until the pointer moves again
        try:
            self.manager.load(target)
        except Exception:
            self.errors += 1  # recorded in manager.last_error; the old model keeps serving
        return True

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            try:
                self.check_once()
            except Exception as exc:  # the watcher never dies on a bad folder state
                log.warning("watch %s: %s", self.root, exc)

    def stop(self) -> None:
        self._halt.set()
