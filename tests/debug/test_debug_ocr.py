"""The accuracy debugger on the real PP-OCRv4 recogniser (slow, ~8-30 min): INT8 loses CTC
agreement, and the fp32 fallback ``debug`` names wins part of it back, verified by
re-quantizing and measuring on 96 held-out lines it never searched on. Measured: 49%
recovered (0.573 -> 0.781), short of the issue's 80% goal (docs/DEBUG.md), so this test
asserts what is reached, not the goal. The numbers in docs/DEBUG.md come from
examples/debug_ocr_rec.py, which this test runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paddleopt.zoo import rapidocr

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not rapidocr.available(), reason="needs rapidocr-paddle")]
REPO = Path(__file__).resolve().parents[2]


def test_ocr_rec_int8_fallback_recovers(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(REPO / "examples" / "debug_ocr_rec.py"),
                          "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=5400, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    fb = json.loads((tmp_path / "report" / "debug.json").read_text())["fallback"]
    assert fb["verified"] and fb["holdout_samples"] == 96, fb
    assert fb["given_agreement"] < 0.8 and fb["baseline_agreement"] < 0.8, fb
    assert fb["recovered"] >= 0.3, res.stdout[-3000:]
    assert len(fb["skip_tensors"]) <= 4, fb  # a short list, most convolutions stay INT8
    assert "fc" not in fb["onednn_int8_ops"] and "fused_conv2d" in fb["onednn_int8_ops"], fb
