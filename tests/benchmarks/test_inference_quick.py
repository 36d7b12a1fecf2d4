"""benchmarks/inference.py --quick writes rows in the shared benchmark contract."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}


def test_inference_quick(tmp_path):
    out = tmp_path / "inference.json"
    proc = subprocess.run([sys.executable, "benchmarks/inference.py", "--quick", "--no-docs",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["suite"] == "inference" and data["machine"]["cores"] >= 1
    variants = {r["variant"] for r in data["rows"]}
    assert {"eager", "pi-native-t1", "pi-onednn-t1"} <= variants
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["latency_ms"]["p50"] > 0 and row["accuracy"] > 0.5
    assert set(data["summary"]) == {"batch1", "batch8"}
