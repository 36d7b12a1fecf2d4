"""benchmarks/compression.py --quick writes rows in the shared benchmark contract."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}


def test_compression_quick(tmp_path):
    out = tmp_path / "compression.json"
    proc = subprocess.run([sys.executable, "benchmarks/compression.py", "--quick", "--no-docs",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["suite"] == "compression" and data["machine"]["cores"] >= 1
    variants = {r["variant"] for r in data["rows"]}
    assert {"fp32", "int8-qat", "pruned-50", "student-kd", "student-plain"} <= variants
    assert any(v.startswith("int8-ptq-") for v in variants)
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["latency_ms"]["p50"] > 0 and 0 <= row["accuracy"] <= 1
    by = {(r["variant"], r["batch_size"]): r for r in data["rows"]}
    assert by[("pruned-50", 8)]["flops"] < by[("fp32", 8)]["flops"]
    assert by[("int8-qat", 8)]["precision"] == "int8"
    s = data["summary"]
    assert {"ptq", "qat", "prune", "distill", "checks"} <= set(s)
    assert s["prune"]["flops_after"] < s["prune"]["flops_before"]
    d = s["distill"]  # KD vs plain repeated per seed, with means and spreads
    assert d["seeds"] == [0, 1] and len(d["per_seed"]) == 2 and d["labelled_images"] == 300
    assert {r["seed"] for r in data["rows"] if r["variant"] == "student-kd"} == {0, 1}
    assert d["kd_beats_plain"] == (d["kd_accuracy"] > d["plain_accuracy"])
    assert len(s["checks"]) == 7 and all(isinstance(v, bool) for v in s["checks"].values())
    assert [c["name"] for c in data["ptq_candidates"]] == ["abs_max", "avg"]


@pytest.mark.slow  # ~1 min: PTQ, qat_distill and prune_distill on the quickstart architecture
def test_no_training_code_quick(tmp_path):
    out = tmp_path / "compression.json"
    proc = subprocess.run([sys.executable, "benchmarks/compression.py", "--no-training-code",
                           "--quick", "--no-docs", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "compression_notraining.json").read_text())
    s = data["no_training_code"]
    assert {"hist", "qat_distill"} <= set(s["quickstart"])
    assert s["quickstart"]["qat_distill"]["speedup_vs_fp32"] > 0
    assert s["prune"]["flops_after"] < 0.6 * s["prune"]["flops_before"]  # prune_distill: FLOPs -50%
    assert set(s["checks"]) >= {"pruned: >= 1.5x latency", "pruned: <= 1 point drop"}
