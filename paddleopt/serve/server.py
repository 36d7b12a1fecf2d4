"""Assemble the service (cache + manager + batcher + metrics + watcher) and run uvicorn.

    paddleopt serve ARTIFACT [--host 127.0.0.1 --port 8000 --max-batch-size 32 ...]

``serve()`` blocks (the CLI); ``BackgroundServer`` runs the same server in a thread on an
ephemeral loopback port (tests, notebooks).
"""
from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from paddleopt.utils.errors import UserError

log = logging.getLogger("paddleopt.serve")


@dataclass
class ServeConfig:
    """Server knobs (``paddleopt serve --help`` lists the same).

    Attributes:
        host: interface to bind; 127.0.0.1 (this machine only) unless you mean otherwise.
        port: TCP port; 0 picks a free one (printed at start).
        backend: default: the natural backend of the artifact kind.
        options: backend options (threads, onednn...); threads default to cores / workers.
        workers: executor threads, each running batches on its own predictor (clone).
        executor: where predictors run. "thread": in the server process (Paddle Inference
            clones sharing weights; but its run() holds the GIL, so runs serialize with each
            other and with HTTP). "process": one child process per worker (a full copy of
            the model each; runs in parallel with each other and with HTTP).
        max_batch_size: rows per model run; 1 turns dynamic batching off.
        max_wait_ms: how long the oldest queued request waits for batch-mates.
        max_queue: queued requests before answering 503.
        max_body_bytes: larger request bodies get 413 before being read.
        max_request_rows: samples in one request (413 beyond).
        cache_models: loaded artifacts kept (an old version is freed once drained when 1).
        watch: a folder whose ``current`` symlink / ``CURRENT`` file names the version to serve.
        watch_interval_s: how often the folder is checked.
        allow_reload: accept POST /reload.
        probe: run one probe batch through a new model before serving it.
        isolate_reloads: with the thread executor, load and probe each reloaded model in a
            child process first (a file that crashes Paddle kills the child, not the server;
            costs a process start, ~2-4 s, per reload).
        request_timeout_s: a request still unanswered after this gets 504.
        body_timeout_s: a request body not fully received after this gets 408 (and the
            connection is closed): slow or stalled uploads cannot pile up.
        max_connections: concurrent connections before uvicorn answers 503.
        http: uvicorn's HTTP parser: "httptools" (C, llhttp), "h11" (pure Python) or "auto"
            (httptools when installed).
        loop: the event loop: "uvloop" (libuv), "asyncio" or "auto" (uvloop when installed).
        model_name: the model's name in the v2 protocol (/v2/models/NAME); default: the
            artifact folder's name (the watched folder's with --watch).
        shapes: input name -> shape or {min, opt, max} for inputs with dynamic dimensions
            (``--shape x=1x3x48x320``, as bench/convert take it): the probe and warm-up
            input of every loaded version; recorded on its inputs like any other command.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    executor: Literal["thread", "process"] = "thread"
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_queue: int = 1024
    max_body_bytes: int = 8 << 20
    max_request_rows: int = 64
    cache_models: int = 1
    watch: str | None = None
    watch_interval_s: float = 1.0
    allow_reload: bool = True
    probe: bool = True
    isolate_reloads: bool = True
    request_timeout_s: float = 30.0
    body_timeout_s: float = 10.0
    max_connections: int = 1024
    model_name: str | None = None
    http: Literal["auto", "httptools", "h11"] = "auto"
    loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    log_level: str = "warning"
    shapes: dict[str, Any] | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.model_name is not None and (not self.model_name or "/" in self.model_name):
            return (f"model_name {self.model_name!r} cannot be a URL path segment",
                    "use e.g. --model-name digits")
        if not 0 <= self.port <= 65535:
            return f"port {self.port} is not a TCP port", "use e.g. --port 8000 (0: any free)"
        for name in ("workers", "max_batch_size", "max_queue", "max_request_rows",
                     "cache_models", "max_connections"):
            if getattr(self, name) < 1:
                return f"{name} must be >= 1", f"set {name} to 1 or more."
        if (self.max_wait_ms < 0 or self.max_body_bytes < 1024 or self.request_timeout_s <= 0
                or self.body_timeout_s <= 0):
            return ("max_wait_ms must be >= 0, max_body_bytes >= 1024, request_timeout_s and "
                    "body_timeout_s > 0", "fix the value.")
        return None


class Service:
    """Everything behind the HTTP layer; ``close()`` stops threads and frees the models."""

    def __init__(self, config: ServeConfig, artifact: str | Path | None = None) -> None:
        from paddleopt.config.schema import parse
        from paddleopt.serve.batching import DynamicBatcher
        from paddleopt.serve.cache import PredictorCache
        from paddleopt.serve.metrics import Metrics
        from paddleopt.serve.reload import DirectoryWatcher, ModelManager

        self.config = parse(ServeConfig, dataclasses.asdict(config), path="serve")
        cfg = self.config
        self.metrics = Metrics()
        if cfg.executor == "process":
            from paddleopt.serve.procpool import ProcessPredictor

            self.cache = PredictorCache(
                cfg.cache_models, pool_size=cfg.workers, prefill=True,
                loader=lambda art, backend, options: ProcessPredictor(art.path, backend,
                                                                      options))
        else:
            self.cache = PredictorCache(cfg.cache_models, pool_size=cfg.workers)
        isolate = cfg.isolate_reloads and cfg.executor == "thread"
        self.manager = ModelManager(self.cache, cfg.backend, cfg.options, cfg.probe,
                                    default_threads=_default_threads(cfg),
                                    isolate_reloads=isolate, shapes=cfg.shapes)
        self.watcher = DirectoryWatcher(self.manager, cfg.watch, cfg.watch_interval_s) \
            if cfg.watch else None
        if artifact is None:
            if self.watcher is None:
                raise UserError("nothing to serve: no ARTIFACT and no --watch folder.",
                                "pass an artifact folder (e.g. work_dirs/x/02_export).")
            artifact = self.watcher.initial()
        self.manager.load(artifact)  # a bad artifact fails here, before the port opens
        self.model_name = cfg.model_name or Path(cfg.watch or artifact).resolve().name
        self.batcher = DynamicBatcher(cfg.max_batch_size, cfg.max_wait_ms, cfg.workers,
                                      cfg.max_queue, on_batch=self.metrics.observe_batch)
        if self.watcher is not None:
            self.watcher.seen = self.watcher.resolve()
            self.watcher.start()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.batcher.close()
        self.manager.close()


def _default_threads(cfg: ServeConfig) -> int:
    """CPU threads per predictor: the cores shared between the worker threads (threads=0
    would give every predictor all cores and oversubscribe them)."""
    from paddleopt.utils.machine import available_cores

    return max(1, available_cores() // cfg.workers)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not the default 0: asyncio only sets TCP_NODELAY on accepted
    # sockets whose proto says TCP. Without it uvicorn's answer (headers and body written
    # separately) meets Nagle + the client's delayed ACK: every request took ~44 ms on
    # loopback, so 32 connections could never exceed ~700 requests/s whatever the model.
    # Linux copies TCP_NODELAY from the listening socket to the accepted ones; set it too.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}.",
                        "pick another --port (0: any free port) or stop what uses it.") from None
    # Listen now: clients told the URL may connect before uvicorn's loop runs; they wait in
    # the backlog instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(service: Service) -> Any:
    import uvicorn

    from paddleopt.serve.app import create_app

    cfg = service.config
    config = uvicorn.Config(create_app(service), log_level=cfg.log_level, access_log=False,
                            lifespan="off", limit_concurrency=cfg.max_connections,
                            timeout_keep_alive=30, http=cfg.http, loop=cfg.loop)
    return uvicorn.Server(config)


def serve(artifact: str | Path | None, config: ServeConfig | None = None,
          ready: Callable[[str, Service], None] | None = None) -> None:
    """Load the artifact and serve it until interrupted (Ctrl-C / SIGTERM)."""
    from paddleopt.utils.imports import require_extra

    require_extra("serve", "paddleopt serve")
    config = config or ServeConfig()
    service = Service(config, artifact)
    sock = None
    try:
        sock = bind_socket(service.config.host, service.config.port)
        host, port = sock.getsockname()[:2]
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        if ready is not None:
            ready(url, service)
        _uvicorn_server(service).run(sockets=[sock])
    finally:
        service.close()
        if sock is not None:
            sock.close()


class BackgroundServer:
    """The real server on a loopback port in a background thread::

        with BackgroundServer(service) as server:
            httpx.get(server.url + "/health")
    """

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 0,
                 close_service: bool = True) -> None:
        self.service = service
        self.host, self.port = host, port
        self.close_service = close_service
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __enter__(self) -> BackgroundServer:
        self._sock = bind_socket(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        self._server = _uvicorn_server(self.service)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="paddleopt-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        if self._sock is not None:
            self._sock.close()
        if self.close_service:
            self.service.close()
