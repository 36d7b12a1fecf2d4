"""benchmarks/peers.py --quick: every backend x precision on the quickstart CNN, agreement with
fp32 for every row, the summary against the peers; pi_call_cost.py --quick: its rows."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}


def run(script: str, tmp_path, *args: str) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, f"benchmarks/{script}.py", "--quick", "--no-docs",
                           "--out", str(out), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow  # ~70 s: PTQ, NNCF PTQ, three conversions, eleven deployments
def test_peers_quick(tmp_path):
    data = run("peers", tmp_path, "--cache", str(tmp_path / "models"))
    assert data["suite"] == "peers" and data["load_avg"]
    for row in data["rows"]:
        assert ROW_KEYS <= set(row) and row["latency_ms"]["p50"] > 0
        assert row["input_shape"][1:] == [1, 28, 28]
        assert 0.0 <= row["agreement"] <= 1.0 and row["agreement_metric"] == "top1_agreement"
    variants = {r["variant"] for r in data["rows"]}
    assert {"pi-fp32", "pi-int8", "ort-fp32", "ort-int8", "ov-fp32", "ov-default", "ov-int8",
            "ov-nncf-int8", "ov-nncf-int8-bf16", "lite-x86"} <= variants
    effective = {r["variant"]: r["effective_precision"] for r in data["rows"]}
    assert effective["pi-int8"] == effective["ov-int8"] == effective["ort-int8"] == "int8"
    assert effective["ov-nncf-int8"] == "int8" and effective["ov-nncf-int8-bf16"] == "int8+bf16"
    assert all(r["agreement"] >= 0.9 for r in data["rows"] if r["precision"] == "int8")
    for entry in data["summary"]:
        assert entry["best"] in variants and entry["vs_fastest_peer"] > 0
        assert entry["pi_fp32_vs_ov_fp32"] > 0


def test_pi_call_cost_quick(tmp_path):
    data = run("pi_call_cost", tmp_path)
    names = {r["variant"] for r in data["rows"]}
    assert {"paddle run() only", "paddleopt run(), before", "paddleopt run(), now"} <= names
    assert data["profile_batch1"]["ops_per_run"] >= 5  # the fused quickstart CNN
    assert all(r["latency_ms"]["p50"] > 0 for r in data["rows"])
