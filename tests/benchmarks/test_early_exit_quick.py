"""benchmarks/early_exit.py --quick: early-exit rows next to single-exit ones on every
backend, with exit histograms, in the shared benchmark contract."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}


@pytest.mark.slow
def test_early_exit_quick(tmp_path):
    out = tmp_path / "early_exit.json"
    proc = subprocess.run([sys.executable, "benchmarks/early_exit.py", "--quick", "--no-docs",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["suite"] == "early_exit" and data["load_average"]
    rows = {(r["backend"], r["variant"]): r for r in data["rows"]}
    for backend in ("paddle_inference", "onnxruntime", "lite"):
        single, early = rows[(backend, "single-exit")], rows[(backend, "early-exit chained")]
        assert ROW_KEYS <= set(early) and early["mean_latency_ms_per_sample"] > 0
        assert sum(early["exit_histogram"]) == data["test_samples"]
        assert single["speedup_vs_single_exit"] == 1.0
    # every backend's chain takes the same exits (parity of the segments across runtimes;
    # a sample sitting on the threshold may flip with fp32 rounding)
    firsts = [r["exit_histogram"][0] for r in data["rows"]
              if r["variant"] == "early-exit chained"]
    assert max(firsts) - min(firsts) <= 1
