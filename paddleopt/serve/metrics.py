"""Counters behind /metrics: requests by status, latency, queue wait, batch sizes.

Two views of the same observations:

* Prometheus (``prometheus_client``, one registry per server): histograms in seconds,
  ``paddleopt_requests_total{endpoint, status}`` with the status actually sent (499 when the
  client went away before its answer, 500 when the handler failed), served as text to
  scrapers (``Accept: text/plain`` / OpenMetrics, or ``?format=prometheus``).
* JSON (``snapshot()``): percentiles over the last ``window`` requests, for people and the
  serving benchmark.

Request latency is measured from the end of the body read to the answer: a slow client's
upload time (bounded by ``--body-timeout``) is the client's, not the server's.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any

import numpy as np

# Batch-size histogram buckets (upper bounds, rows per model run).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Seconds: sub-millisecond answers (tiny models, batching) up to the request timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
                   5.0, 10.0, 30.0, 60.0)
STATUS_CLIENT_GONE = 499  # nginx's convention: the client closed before the answer


class Metrics:
    """Thread-safe counters; latency percentiles over the last ``window`` requests."""

    def __init__(self, window: int = 10000) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: collections.Counter[str] = collections.Counter()  # "endpoint status"
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=window)
        self.queue_ms: collections.deque[float] = collections.deque(maxlen=window)
        self.batch_rows: collections.Counter[int] = collections.Counter()
        self.batches = 0
        self.rows = 0
        self.run_ms_total = 0.0
        self.prom = _Prometheus()

    def observe_request(self, endpoint: str, status: int, latency_ms: float | None = None,
                        queue_ms: float | None = None) -> None:
        with self._lock:
            self.requests[f"{endpoint} {status}"] += 1
            if latency_ms is not None and endpoint == "/predict":
                self.latency_ms.append(latency_ms)
            if queue_ms is not None:
                self.queue_ms.append(queue_ms)
        self.prom.observe_request(endpoint, status, latency_ms, queue_ms)

    def observe_batch(self, rows: int, requests: int, run_ms: float) -> None:
        bucket = next((b for b in BATCH_BUCKETS if rows <= b), BATCH_BUCKETS[-1])
        with self._lock:
            self.batch_rows[bucket] += 1
            self.batches += 1
            self.rows += rows
            self.run_ms_total += run_ms
        self.prom.observe_batch(rows, run_ms)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lat = np.asarray(self.latency_ms, dtype=np.float64)
            qms = np.asarray(self.queue_ms, dtype=np.float64)
            by_status: dict[str, dict[str, int]] = {}
            for key, count in self.requests.items():
                endpoint, status = key.rsplit(" ", 1)
                by_status.setdefault(endpoint, {})[status] = count
            return {
                "uptime_s": round(time.time() - self.started, 1),
                "requests_total": sum(self.requests.values()),
                "requests": by_status,
                "predict_latency_ms": _percentiles(lat),
                "queue_wait_ms": _percentiles(qms),
                "batches": self.batches,
                "batch_rows_total": self.rows,
                "mean_batch_rows": round(self.rows / self.batches, 2) if self.batches else None,
                "batch_size_histogram": {f"<={b}": self.batch_rows.get(b, 0)
                                         for b in BATCH_BUCKETS},
                "model_run_ms_total": round(self.run_ms_total, 1),
            }

    def prometheus(self, model: dict[str, Any] | None, queued: int, reloads_ok: int,
                   reloads_failed: int) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self.prom.render(model, queued, reloads_ok, reloads_failed)


def _percentiles(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"count": int(values.size), "p50": round(float(p50), 3),
            "p90": round(float(p90), 3), "p99": round(float(p99), 3),
            "max": round(float(values.max()), 3)}


class _Prometheus:
    """prometheus_client metrics in a registry of their own (several servers can live in one
    process: tests, notebooks)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("paddleopt_requests", "HTTP requests answered, by endpoint "
                                "and the status sent (499: the client left first).",
                                ["endpoint", "status"], registry=reg)
        self.latency = Histogram("paddleopt_request_duration_seconds", "Time from the "
                                 "request's body read to its answer, by endpoint.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=reg)
        self.queue = Histogram("paddleopt_queue_wait_seconds", "Time a request waited in the "
                               "batching queue before its model run started.",
                               buckets=LATENCY_BUCKETS, registry=reg)
        self.batch_rows = Histogram("paddleopt_batch_rows", "Rows per model run (dynamic "
                                    "batching).", buckets=BATCH_BUCKETS, registry=reg)
        self.run = Histogram("paddleopt_model_run_seconds", "Duration of one model run.",
                             buckets=LATENCY_BUCKETS, registry=reg)
        self.queued = Gauge("paddleopt_queue_depth", "Requests waiting for a model run.",
                            registry=reg)
        self.reloads = Gauge("paddleopt_reloads", "Model reloads since start, by result.",
                             ["result"], registry=reg)
        self.model = Gauge("paddleopt_model_info", "The model being served (value 1).",
                           ["version", "kind", "precision", "backend"], registry=reg)
        self.uptime = Gauge("paddleopt_uptime_seconds", "Seconds since the server started.",
                            registry=reg)
        self._started = time.time()
        self._lock = threading.Lock()  # render() clears and refills the model gauge

    def observe_request(self, endpoint: str, status: int, latency_ms: float | None,
                        queue_ms: float | None) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if latency_ms is not None:
            self.latency.labels(endpoint).observe(latency_ms / 1e3)
        if queue_ms is not None:
            self.queue.observe(queue_ms / 1e3)

    def observe_batch(self, rows: int, run_ms: float) -> None:
        self.batch_rows.observe(rows)
        self.run.observe(run_ms / 1e3)

    def render(self, model: dict[str, Any] | None, queued: int, reloads_ok: int,
               reloads_failed: int) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        with self._lock:
            self.queued.set(queued)
            self.reloads.labels("ok").set(reloads_ok)
            self.reloads.labels("failed").set(reloads_failed)
            self.uptime.set(time.time() - self._started)
            self.model.clear()
            if model:
                self.model.labels(model["version"], model.get("kind") or "",
                                  model.get("precision") or "",
                                  model.get("backend") or "").set(1)
            return generate_latest(self.registry), CONTENT_TYPE_LATEST


def wants_prometheus(accept: str | None, format_param: str | None) -> bool:
    """Prometheus text for scrapers (their Accept names text/plain or OpenMetrics) and for
    ``?format=prometheus``; JSON otherwise (browsers, curl, ``?format=json``)."""
    if format_param:
        return format_param == "prometheus"
    accept = (accept or "").lower()
    return "openmetrics" in accept or accept.startswith("text/plain")
