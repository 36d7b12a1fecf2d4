"""benchmarks/serving.py --quick: server rows in the shared benchmark contract."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}


def test_serving_quick(tmp_path):
    out = tmp_path / "serving.json"
    proc = subprocess.run([sys.executable, "benchmarks/serving.py", "--quick", "--no-docs",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["suite"] == "serving"
    assert {(r["model"], r["variant"]) for r in data["rows"]} == {
        (m, v) for m in ("lenet-digits", "mlp-1024x3")
        for v in ("batch1", "dynamic", "batch1-no-http", "dynamic-no-http")}
    for row in data["rows"]:
        assert ROW_KEYS <= set(row) and row["backend"] == "server"
        assert row["failed"] == 0 and row["throughput_per_s"] > 0
        assert row["latency_ms"]["p99"] >= row["latency_ms"]["p50"] > 0
        assert row["concurrency"] == 32
    one = [r for r in data["rows"] if r["variant"].startswith("batch1")]
    assert all(r["mean_batch_rows"] == 1.0 for r in one)
    dyn = [r for r in data["rows"] if r["variant"].startswith("dynamic")]
    assert all(r["mean_batch_rows"] > 1.0 for r in dyn)
    assert all("throughput_ratio_no_http" in v for v in data["summary"].values())
    assert set(data["summary"]) == {"lenet-digits", "mlp-1024x3"}
