"""benchmarks/distributed.py --quick: 1 vs 2 training processes in the benchmark contract."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

ROW_KEYS = {"model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb"}


def test_distributed_quick(tmp_path):
    out = tmp_path / "distributed.json"
    proc = subprocess.run([sys.executable, "benchmarks/distributed.py", "--quick", "--no-docs",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["suite"] == "distributed"
    rows = {r["variant"]: r for r in data["rows"]}
    assert set(rows) == {"1proc-1thread", "2proc-1thread"}
    for row in rows.values():
        assert ROW_KEYS <= set(row)
        assert row["throughput_per_s"] > 0 and row["batch_size"] == 64
        assert row["latency_ms"]["p50"] > 0 and row["accuracy"] > 0.3
    assert rows["2proc-1thread"]["processes"] == 2 and rows["2proc-1thread"]["per_rank_batch"] == 32
    assert set(data["summary"]) == set(rows)
