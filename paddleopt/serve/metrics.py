"""Counters behind /metrics: requests by status, batch sizes, latency percentiles."""
from __future__ import annotations

import collections
import threading
import time
from typing import Any

import numpy as np

# Batch-size histogram buckets (upper bounds, rows per model run).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


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

    def observe_request(self, endpoint: str, status: int, latency_ms: float | None = None,
                        queue_ms: float | None = None) -> None:
        with self._lock:
            self.requests[f"{endpoint} {status}"] += 1
            if latency_ms is not None:
                self.latency_ms.append(latency_ms)
            if queue_ms is not None:
                self.queue_ms.append(queue_ms)

    def observe_batch(self, rows: int, requests: int, run_ms: float) -> None:
        bucket = next((b for b in BATCH_BUCKETS if rows <= b), BATCH_BUCKETS[-1])
        with self._lock:
            self.batch_rows[bucket] += 1
            self.batches += 1
            self.rows += rows
            self.run_ms_total += run_ms

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


def _percentiles(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"count": int(values.size), "p50": round(float(p50), 3),
            "p90": round(float(p90), 3), "p99": round(float(p99), 3),
            "max": round(float(values.max()), 3)}


def prometheus_text(snapshot: dict[str, Any], model: dict[str, Any] | None) -> str:
    """The same numbers in Prometheus text format (GET /metrics?format=prometheus)."""
    lines = ["# TYPE paddleopt_requests_total counter"]
    for endpoint, statuses in snapshot["requests"].items():
        for status, count in statuses.items():
            lines.append(f'paddleopt_requests_total{{endpoint="{endpoint}",status="{status}"}} '
                         f"{count}")
    lines.append("# TYPE paddleopt_predict_latency_ms summary")
    for q in ("p50", "p90", "p99"):
        value = snapshot["predict_latency_ms"].get(q)
        if value is not None:
            lines.append(f'paddleopt_predict_latency_ms{{quantile="0.{q[1:]}"}} {value}')
    lines.append("# TYPE paddleopt_batch_rows histogram")
    cumulative = 0
    for bucket, count in snapshot["batch_size_histogram"].items():
        cumulative += count
        lines.append(f'paddleopt_batch_rows_bucket{{le="{bucket[2:]}"}} {cumulative}')
    lines.append(f'paddleopt_batch_rows_bucket{{le="+Inf"}} {snapshot["batches"]}')
    lines.append(f"paddleopt_batch_rows_sum {snapshot['batch_rows_total']}")
    lines.append(f"paddleopt_batch_rows_count {snapshot['batches']}")
    if model:
        lines.append(f'paddleopt_model_info{{version="{model["version"]}"}} 1')
    return "\n".join(lines) + "\n"
