"""Which layers to leave in fp32: ranked from the per-layer errors, verified by re-quantizing.

The ranking alone is a guess (the simulated INT8 run is not oneDNN's, and errors interact), so
every proposal is checked the way ``ptq`` would deploy it: the fp32 model is quantized again
with the same settings plus the skip list, run by Paddle Inference with oneDNN INT8, and its
outputs scored against the fp32 model's on the same inputs (``metrics.agreement``).
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.debug.compare import LayerError

SKIPPABLE = ("conv2d", "depthwise_conv2d", "conv2d_transpose")  # see stages/_ptq/layers.py


@dataclass
class FallbackStep:
    skip_tensors: list[str]
    agreement: float
    recovered: float  # share of the agreement INT8 lost that this skip list wins back
    onednn_int8_ops: list[str] | None = None  # None: the INT8 artifact's own list

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fallback:
    """The verified skip-list search.

    Attributes:
        given_agreement: B's own agreement with A (both run by Paddle Inference).
        baseline_agreement: the re-quantized model without extra skips (same settings).
        steps: one per skip list tried, growing by one layer each.
        skip_tensors: the shortest list reaching ``target`` recovery (else the best tried).
        settings: the PTQ settings used (from the INT8 artifact's manifest).
    """

    given_agreement: float  # B as it is
    baseline_agreement: float
    target: float
    steps: list[FallbackStep] = field(default_factory=list)
    skip_tensors: list[str] = field(default_factory=list)
    recovered: float = 0.0
    onednn_int8_ops: list[str] | None = None  # set when INT8 must be limited to these types
    settings: dict[str, Any] = field(default_factory=dict)
    metric: str = "paddleopt.metrics.agreement:agreement"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_scores(rows: list[LayerError]) -> list[tuple[str, float]]:
    """(weight, what INT8 costs the layer alone: ``quant_error``), largest first, for the
    convolutions B quantizes. The accumulated per-layer error is no guide here: deep in a
    model every op inherits error, while an op's own quantization error is measured free of
    it."""
    scores = {r.weight: r.quant_error for r in rows
              if r.op in SKIPPABLE and r.weight and r.quant_error}
    return sorted(scores.items(), key=lambda kv: -kv[1])


def ptq_settings(int8_manifest: Any) -> dict[str, Any]:
    q = dict(int8_manifest.quantization or {})
    return {"algo": q.get("algo") or "hist", "skip_tensors": list(q.get("skip_tensors") or []),
            "weight_quantize_type": q.get("weight_quantize_type") or "channel_wise_abs_max",
            "onnx_format": q.get("onnx_format", True),
            "quantizable_op_types": q.get("quantizable_op_types") or None,
            "onednn_int8_ops": q.get("onednn_int8_ops")}


def search(fp32: Any, int8: Any, feeds: list[np.ndarray], rows: list[LayerError], *,
           target: float = 0.8, max_layers: int = 4, batch_size: int = 8,
           metric: str | None = None, log: Any = None) -> Fallback:
    """Re-quantize ``fp32`` skipping the top-ranked layers one more at a time until the
    agreement lost to INT8 is recovered by ``target`` (or ``max_layers`` are skipped).
    ``metric``: ``package.module:function(outputs, reference) -> float`` instead of the
    built-in agreement (e.g. ``paddleopt.metrics.ocr:ctc_agreement``)."""
    from paddleopt.metrics.agreement import agreement
    from paddleopt.metrics.reference import load_metric, run_all

    fn = load_metric(metric, "--metric") if metric else None

    def agree(outputs: list[np.ndarray], ref: list[np.ndarray]) -> float:
        return float(fn(outputs, ref) if fn else agreement(outputs, ref)["score"])

    settings = ptq_settings(int8.manifest)
    ref = run_all(_predictor(fp32), feeds, batch_size)
    with tempfile.TemporaryDirectory(prefix="paddleopt-debug-") as tmp:
        arts: dict[str, Any] = {}

        def score(skip: list[str], name: str, ops: list[str] | None = None) -> float:
            if name not in arts:
                arts[name] = _requantize(fp32, Path(tmp) / name, feeds, settings, skip,
                                         batch_size)
            return agree(run_all(_predictor(arts[name], ops), feeds, batch_size), ref)

        given = agree(run_all(_predictor(int8), feeds, batch_size), ref)
        base = score(settings["skip_tensors"], "base")
        result = Fallback(given, base, target, settings=settings)
        if metric:
            result.metric = metric
        if log:
            log(f"re-quantized without extra skips: agreement {base:.4f}")
        if base >= 1.0:  # nothing lost: nothing to win back
            return result
        skip: list[str] = []
        for weight, _ in layer_scores(rows)[:max_layers]:
            skip.append(weight)
            value = score([*settings["skip_tensors"], *skip], f"skip{len(skip)}")
            rec = (value - base) / (1.0 - base)
            result.steps.append(FallbackStep(list(skip), value, rec))
            if log:
                log(f"skipping {', '.join(skip)}: agreement {value:.4f} "
                    f"({rec:.0%} of the loss recovered)")
            if rec >= target:
                break
        convs = sorted({r.op for r in rows if r.op in SKIPPABLE and r.quant_error is not None})
        others = {r.op for r in rows if r.quant_error is not None and r.weight} - set(convs)
        reached = any(s.recovered >= target for s in result.steps)
        if not reached and convs and others and settings["onednn_int8_ops"] is None:
            # A few layers are not enough: keep the matmuls (oneDNN fc) fp32 instead, the
            # one other fallback oneDNN honours (ptq's onednn_int8_ops).
            tries = [([], "base")] + ([(list(skip), f"skip{len(skip)}")] if skip else [])
            for skip_now, name in tries:
                value = score([*settings["skip_tensors"], *skip_now], name, convs)
                rec = (value - base) / (1.0 - base)
                result.steps.append(FallbackStep(list(skip_now), value, rec, convs))
                if log:
                    log(f"INT8 on {', '.join(convs)} only"
                        + (f", skipping {', '.join(skip_now)}" if skip_now else "")
                        + f": agreement {value:.4f} ({rec:.0%} of the loss recovered)")
                if rec >= target:
                    break
        best = max(result.steps, key=lambda s: s.recovered, default=None)
        if best is not None:
            done = next((s for s in result.steps if s.recovered >= target), best)
            result.skip_tensors, result.recovered = done.skip_tensors, done.recovered
            result.onednn_int8_ops = done.onednn_int8_ops
    return result


def _requantize(fp32: Any, folder: Path, feeds: list[np.ndarray], settings: dict[str, Any],
                skip: list[str], batch_size: int) -> Any:
    from paddleopt.artifact import Artifact
    from paddleopt.compress.ptq import DEFAULT_OP_TYPES, quantize_post_static

    batches = [[f[i:i + batch_size] for f in feeds] for i in range(0, len(feeds[0]), batch_size)]
    report = quantize_post_static(
        fp32.path, folder, batches, algo=settings["algo"], batch_size=batch_size,
        batch_nums=len(batches), skip_tensors=skip,
        quantizable_op_types=settings["quantizable_op_types"] or DEFAULT_OP_TYPES,
        weight_quantize_type=settings["weight_quantize_type"],
        onnx_format=settings["onnx_format"])
    quant = {"method": "ptq", "algo": settings["algo"], "skip_tensors": skip,
             "onnx_format": report.onnx_format,
             "onednn_int8_ops": settings["onednn_int8_ops"]}
    manifest = fp32.manifest.derive(kind="inference", precision="int8", quantization=quant,
                                    files={"model": "model.pdmodel",
                                           "params": "model.pdiparams"})
    manifest.save(folder)
    return Artifact(folder, manifest)


def _predictor(artifact: Any, int8_ops: list[str] | None = None) -> Any:
    from paddleopt.deploy.predictor import load_predictor

    options = {"onednn_int8_ops": int8_ops} if int8_ops else None
    return load_predictor(artifact, "paddle_inference", options)
