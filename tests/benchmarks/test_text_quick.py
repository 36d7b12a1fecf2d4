"""benchmarks/text.py --quick writes rows in the shared benchmark contract, plus the text
suite's fields (end-to-end shares, parallel preprocessing, accuracies)."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}
TEXT_KEYS = {"preprocess_ms_p50", "model_ms_p50", "preprocess_share", "lac_share", "e2e"}


def test_text_quick(tmp_path):
    out = tmp_path / "text.json"
    proc = subprocess.run([sys.executable, "benchmarks/text.py", "--quick", "--no-docs",
                           "--out", str(out)], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["suite"] == "text" and data["machine"]["cores"] >= 1
    assert {(r["variant"], r["batch_size"]) for r in data["rows"]} == {
        (v, b) for v in ("fp32", "int8-ptq-hist", "int8-ptq-hist-all-ops", "fp32-onnx")
        for b in (1, 8)}
    for row in data["rows"]:
        assert ROW_KEYS | TEXT_KEYS <= set(row)
        assert row["latency_ms"]["p50"] > 0 and row["throughput_per_s"] > 0
        assert 0 < row["preprocess_share"] < 1 and 0 <= row["accuracy"] <= 1
        assert row["onednn"] is (True if row["backend"] == "paddle_inference" else None)
    int8_ops = {r["variant"]: r["onednn_int8_ops"] for r in data["rows"]}
    # the int8 artifact records [fc] and the backend applies it; -all-ops overrides it
    assert int8_ops["int8-ptq-hist"] == ["fc"] and int8_ops["int8-ptq-hist-all-ops"] == ["all"]
    assert int8_ops["fp32"] is None
    parallel = {p["preprocess"]: p for p in data["parallel_preprocessing"]}
    assert set(parallel) == {"tokenize", "lac+tokenize"}
    assert all(p["identical"] and p["speedup"] > 0 for p in parallel.values())
    speed = {(p["preprocess"], p["when"]): p for p in data["preprocessing_per_worker"]}
    assert {(name, when) for name in ("LAC + tokenize", "tokenize only (no LAC)", "LAC alone")
            for when in ("before", "after")} == set(speed)
    # every "after" (caches, batched GRU) returns exactly what its "before" returns
    assert all(p["identical_to_before"] for p in speed.values() if p["when"] == "after")
    assert set(data["int8_vs_fp32"]) == {"batch1", "batch8"}
    assert data["accuracy_test"]["student_int8-ptq-hist"] is not None
    assert data["int8_vs_fp32"]["batch1"]["variant"] == "int8-ptq-hist"
