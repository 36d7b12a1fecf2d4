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
    variants = ("batch1", "dynamic", "batch1-json", "dynamic-json", "batch1-process",
                "dynamic-process", "dynamic-h11", "dynamic-process-h11", "batch1-no-http",
                "dynamic-no-http", "model-b1", "model-b32")
    assert {(r["model"], r["variant"]) for r in data["rows"]} == {
        (m, v) for m in ("lenet-digits", "mlp-1024x3") for v in variants}
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["failed"] == 0 and row["throughput_per_s"] > 0
        assert row["latency_ms"]["p99"] >= row["latency_ms"]["p50"] > 0
        if row["variant"].startswith("model-"):
            assert row["backend"] == "paddle_inference"
            continue
        assert row["backend"] == "server" and row["concurrency"] == 32
        assert row["server_cpu_ms_per_request"] > 0
        assert row["executor"] == ("process" if "process" in row["variant"] else "thread")
        if "no-http" not in row["variant"]:
            assert row["client_cpu_ms_per_request"] > 0 and row["peak_rss_mb"] > 0
    one = [r for r in data["rows"] if r["variant"].startswith("batch1")]
    assert all(r["mean_batch_rows"] == 1.0 for r in one)
    dyn = [r for r in data["rows"] if r["variant"].startswith("dynamic")]
    assert all(r["mean_batch_rows"] > 1.0 for r in dyn)
    assert set(data["summary"]) == {"lenet-digits", "mlp-1024x3"}
    for v in data["summary"].values():
        assert {"throughput_ratio", "cpu_per_answer_ratio", "throughput_ratio_no_http",
                "throughput_ratio_json", "throughput_ratio_process", "model_batch_gain",
                "efficiency", "efficiency_h11", "server_cpu_ms_per_answer_h11_vs_fast"} <= set(v)
        assert v["efficiency"] > 0 and v["efficiency_variant"].startswith("dynamic")
    h11 = [r for r in data["rows"] if r["variant"].endswith("h11")]
    assert h11 and all(r["http"] == "h11" for r in h11)
