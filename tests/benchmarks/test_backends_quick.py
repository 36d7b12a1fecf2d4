"""benchmarks/backends.py --quick writes the matrix and the conversions in the shared contract."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}


def test_backends_quick(tmp_path):
    out = tmp_path / "backends.json"
    proc = subprocess.run([sys.executable, "benchmarks/backends.py", "--quick", "--no-docs",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["suite"] == "backends" and data["machine"]["cores"] >= 1
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["latency_ms"]["p50"] > 0 and row["accuracy"] > 0.5
    seen = {(r["backend"], r["precision"], r["onednn"]) for r in data["rows"]}
    assert {("paddle_inference", "fp32", True), ("paddle_inference", "fp32", False),
            ("paddle_inference", "int8", True), ("paddle_inference", "int8", False),
            ("onnxruntime", "fp32", None), ("lite", "fp32", None)} <= seen
    conv = data["conversions"][0]
    assert conv["onnx_parity"] < 1e-4 and conv["lite_x86_parity"] < 1e-4
    assert conv["lite_arm_fp32_bytes"] > 0 and conv["lite_arm_int8_bytes"] > 0
    assert conv["lite_arm_int8_kernels"] is True
    cores = data["machine"]["cores"]
    assert set(data["summary"]) == {f"batch1_t{cores}", f"batch8_t{cores}"}
    for entry in data["summary"].values():
        assert entry["speedup_vs_ort_fp32_p50"] > 0 and entry["best"]
