"""Which ops to keep in fp32 so INT8 follows fp32 again: searched on the outputs, verified by
re-quantizing and measuring on held-out inputs.

Two knobs exist under Paddle Inference oneDNN INT8, and the search turns both:

1. **op types** (ptq's ``onednn_int8_ops``, ``enable_mkldnn_int8(types)``): oneDNN runs a type
   INT8 only when it is listed, by its name after fusion (``fused_conv2d``, ``fc``,
   ``fused_matmul``...). A skipped matmul is fused into an ``fc`` that drops the skip mark and
   runs INT8 anyway, so linear layers can only be kept fp32 as a type.
2. **convolutions one by one** (ptq's ``skip_tensors``): the conv keeps its mark through
   fusion.

The search runs on the search inputs with cheap variants of B (``variants``: no
re-quantizing), each scored at the output with the user's metric: first greedy over op-type
groups (drop the group whose fp32 wins the most, again while it helps), then the quantization
sensitivity of each convolution alone ("quant one layer" turned around: each conv fp32 on its
own, ranked by the output score it wins back, then by the output error it removes), and a
greedy cumulative skip list that keeps a conv only if the re-measured score rises. The
result is then checked the way ``ptq`` would deploy it: the fp32 model quantized again (same
settings, calibrated on the search inputs) without and with the fallback, both run by Paddle
Inference with oneDNN INT8 and scored against fp32 on the held-out inputs.
"""
from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.debug.compare import LayerError

SKIPPABLE = ("conv2d", "depthwise_conv2d", "conv2d_transpose")  # see stages/_ptq/layers.py
# oneDNN INT8 op types (after fusion) the search may keep fp32 as a group; convolutions stay
# INT8 as a type (they are the speed) and are skipped one by one instead.
TYPE_GROUPS: dict[str, tuple[str, ...]] = {
    "linear layers (fc)": ("fc",),
    "activation matmuls": ("fused_matmul", "matmul", "matmul_v2"),
    "data movement": ("slice", "split", "concat", "transpose2", "fused_transpose", "reshape2",
                      "nearest_interp", "nearest_interp_v2", "prior_box", "pool2d"),
    "elementwise": ("elementwise_add", "elementwise_sub", "elementwise_mul",
                    "fused_elementwise_add", "fused_elementwise_sub", "fused_elementwise_mul"),
    "recurrent": ("fusion_gru", "fusion_lstm", "multi_gru"),
}


@dataclass
class FallbackStep:
    """One configuration the search measured on the search inputs."""

    what: str  # "types" (an op-type group fp32), "layer" (one conv alone), "add" (cumulative)
    skip_tensors: list[str]
    agreement: float
    recovered: float  # share of the agreement INT8 lost that this configuration wins back
    onednn_int8_ops: list[str] | None = None  # None: every quantized op type
    output_error: float | None = None  # relative error of the first output vs fp32
    kept: bool = False  # the greedy search kept this change

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fallback:
    """The search and its verification.

    Attributes:
        given_agreement: B's agreement with A on the search inputs (Paddle Inference).
        search_agreement / search_recovered: the chosen fallback on the search inputs.
        baseline_agreement: A re-quantized without the fallback, on the held-out inputs.
        agreement / recovered: A re-quantized with the fallback, on the held-out inputs: the
            verified numbers (``recovered`` = (agreement - baseline) / (1 - baseline)).
        skip_tensors / onednn_int8_ops / fp32_types: the ptq settings (None: all types INT8).
        speed_ms: ms per sample (batch 8, best of 3 alternating rounds) of fp32, the
            re-quantized baseline and the fallback, on the held-out inputs.
    """

    given_agreement: float
    target: float
    baseline_agreement: float = 0.0
    agreement: float = 0.0
    recovered: float = 0.0
    search_agreement: float = 0.0
    search_recovered: float = 0.0
    search_samples: int = 0
    holdout_samples: int = 0
    steps: list[FallbackStep] = field(default_factory=list)
    skip_tensors: list[str] = field(default_factory=list)
    onednn_int8_ops: list[str] | None = None
    fp32_types: list[str] = field(default_factory=list)  # the groups dropped, by name
    int8_convs: int = 0  # convolutions B runs INT8 (before the skip list)
    speed_ms: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    metric: str = "paddleopt.metrics.agreement:agreement"
    verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_scores(rows: list[LayerError]) -> list[tuple[str, float]]:
    """(weight, what INT8 costs the layer alone: ``quant_error``), largest first, for the
    convolutions B quantizes (the candidates of the per-layer search)."""
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


class _Scorer:
    """Runs artifacts by Paddle Inference (oneDNN INT8) and scores them against fp32."""

    def __init__(self, fp32: Any, feeds: list[np.ndarray], batch_size: int,
                 metric: str | None) -> None:
        from paddleopt.metrics.reference import load_metric, run_all

        self.run_all, self.feeds, self.batch_size = run_all, feeds, batch_size
        self.fn = load_metric(metric, "--metric") if metric else None
        self.ref = run_all(_predictor(fp32), feeds, batch_size)

    def __call__(self, artifact: Any, ops: list[str] | None = None) -> tuple[float, float]:
        """(agreement, relative error of the first output) of ``artifact`` on the feeds."""
        from paddleopt.metrics.agreement import agreement

        predictor = _predictor(artifact, ops)
        out = self.run_all(predictor, self.feeds, self.batch_size)
        del predictor
        gc.collect()  # dozens of variants: free each predictor before building the next
        score = float(self.fn(out, self.ref) if self.fn else agreement(out, self.ref)["score"])
        a, b = self.ref[0].astype(np.float64), out[0].astype(np.float64)
        return score, float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-30))


def search(fp32: Any, int8: Any, feeds: list[np.ndarray], rows: list[LayerError], *,
           holdout: list[np.ndarray] | None = None, target: float = 0.8, max_layers: int = 4,
           batch_size: int = 8, metric: str | None = None, log: Any = None) -> Fallback:
    """Find and verify the fp32 fallback of ``int8`` (see the module docstring).

    ``feeds``: the search (and re-quantizing calibration) inputs; ``holdout``: the inputs
    the result is verified on (None: not verified). ``metric``:
    ``package.module:function(outputs, reference) -> float`` instead of the built-in
    agreement (e.g. ``paddleopt.metrics.ocr:ctc_agreement``)."""
    from paddleopt.debug.variants import skipped_variant

    say: Callable[[str], None] = log or (lambda _m: None)
    settings = ptq_settings(int8.manifest)
    scorer = _Scorer(fp32, feeds, batch_size, metric)
    given, _ = scorer(int8)
    result = Fallback(given, target, settings=settings, search_samples=len(feeds[0]))
    if metric:
        result.metric = metric
    convs = [w for w, _ in layer_scores(rows)]
    result.int8_convs = len(convs)
    if given >= 1.0:  # nothing lost: nothing to win back
        result.search_agreement = result.agreement = result.baseline_agreement = given
        return result

    def recovered(value: float) -> float:
        return (value - given) / (1.0 - given)

    with tempfile.TemporaryDirectory(prefix="paddleopt-debug-") as tmp:
        count = [0]

        def measure(skip: list[str], ops: list[str] | None) -> tuple[float, float]:
            count[0] += 1
            variant = skipped_variant(int8, skip, Path(tmp) / f"v{count[0]}", ops)
            return scorer(variant, ops)

        # 1. op-type groups, greedy: drop the group whose fp32 wins the most, while it helps
        from paddleopt.deploy.backends.paddle_inference import ONEDNN_INT8_OP_TYPES

        ops: list[str] | None = settings["onednn_int8_ops"]
        best = measure([], ops)  # B as it is, for its output error
        present = list(ops or ONEDNN_INT8_OP_TYPES)
        groups = {g: t for g, t in TYPE_GROUPS.items() if set(t) & set(present)}
        while groups and recovered(best[0]) < target:
            trials = {}
            for name, types in groups.items():
                trial = [t for t in (ops or ONEDNN_INT8_OP_TYPES) if t not in types]
                value = measure([], trial)
                trials[name] = (value, trial)
                result.steps.append(FallbackStep(f"types: {name} fp32", [], value[0],
                                                 recovered(value[0]), trial, value[1]))
                say(f"{name} in fp32: agreement {value[0]:.4f} "
                    f"({recovered(value[0]):.0%} of the loss recovered)")
            for idle in [g for g, (v, _) in trials.items() if v == best]:
                del groups[idle]  # no op of theirs runs INT8 here
            name, (value, trial) = max(trials.items(), key=lambda kv: kv[1][0][0])
            if value[0] <= best[0]:
                break
            best, ops = value, trial
            result.fp32_types.append(name)
            next(s for s in reversed(result.steps) if s.what == f"types: {name} fp32").kept = True
            groups.pop(name, None)
        # 2. each convolution fp32 alone, then a greedy cumulative skip list
        skip: list[str] = []
        if convs and recovered(best[0]) < target and max_layers > 0:
            start, alone = best, []
            # the convolutions INT8 costs most on their own (``quant_error``) are tried
            for weight in convs[:4 * max_layers]:
                value = measure([weight], ops)
                alone.append((value, weight))
                result.steps.append(FallbackStep("layer", [weight], value[0],
                                                 recovered(value[0]), ops, value[1]))
            alone.sort(key=lambda vw: (-vw[0][0], vw[0][1]))
            say("convolutions by what fp32 alone wins back: " + ", ".join(
                f"{w} {v[0]:.3f}" for v, w in alone[:6]))
            for value, weight in alone[:3 * max_layers]:
                if len(skip) >= max_layers or recovered(best[0]) >= target:
                    break
                if value[0] <= start[0] and value[1] >= start[1]:
                    continue  # fp32 alone changed nothing here
                trial = measure([*skip, weight], ops)
                step = FallbackStep("add", [*skip, weight], trial[0], recovered(trial[0]), ops,
                                    trial[1])
                result.steps.append(step)
                say(f"+ {weight} fp32: agreement {trial[0]:.4f} "
                    f"({recovered(trial[0]):.0%} of the loss recovered)")
                if trial[0] > best[0]:
                    best, step.kept = trial, True
                    skip.append(weight)
        result.skip_tensors, result.onednn_int8_ops = skip, ops
        result.search_agreement, result.search_recovered = best[0], recovered(best[0])
        if holdout is not None and (skip or ops != settings["onednn_int8_ops"]):
            _verify(result, fp32, feeds, holdout, batch_size, metric, Path(tmp), say)
    return result


def _verify(result: Fallback, fp32: Any, calib: list[np.ndarray], holdout: list[np.ndarray],
            batch_size: int, metric: str | None, tmp: Path, say: Callable[[str], None]) -> None:
    """Re-quantize without and with the fallback; score both (and time them) on ``holdout``."""
    settings = result.settings
    scorer = _Scorer(fp32, holdout, batch_size, metric)
    base = _requantize(fp32, tmp / "base", calib, settings, settings["skip_tensors"],
                       batch_size, settings["onednn_int8_ops"])
    fixed = _requantize(fp32, tmp / "fixed", calib, settings,
                        [*settings["skip_tensors"], *result.skip_tensors], batch_size,
                        result.onednn_int8_ops)
    result.baseline_agreement, _ = scorer(base)
    result.agreement, _ = scorer(fixed)
    lost = 1.0 - result.baseline_agreement
    result.recovered = (result.agreement - result.baseline_agreement) / lost if lost else 1.0
    result.holdout_samples, result.verified = len(holdout[0]), True
    say(f"verified on {len(holdout[0])} held-out samples: re-quantized "
        f"{result.baseline_agreement:.4f}, with the fallback {result.agreement:.4f} "
        f"({result.recovered:.0%} of the loss recovered)")
    result.speed_ms = _speed({"fp32": fp32, "int8": base, "fallback": fixed}, holdout,
                             batch_size)


def _speed(arts: dict[str, Any], feeds: list[np.ndarray], batch_size: int,
           rounds: int = 3) -> dict[str, float]:
    """ms per sample of each artifact, best of ``rounds`` alternating rounds."""
    from paddleopt.metrics.reference import run_all

    predictors = {k: _predictor(a) for k, a in arts.items()}
    for p in predictors.values():
        run_all(p, [f[:batch_size] for f in feeds], batch_size)  # warm-up
    best = {k: float("inf") for k in arts}
    for _ in range(rounds):
        for k, p in predictors.items():
            t = time.perf_counter()
            run_all(p, feeds, batch_size)
            best[k] = min(best[k], (time.perf_counter() - t) * 1000 / len(feeds[0]))
    return best


def _requantize(fp32: Any, folder: Path, feeds: list[np.ndarray], settings: dict[str, Any],
                skip: list[str], batch_size: int, onednn_int8_ops: list[str] | None) -> Any:
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
             "onnx_format": report.onnx_format, "onednn_int8_ops": onednn_int8_ops}
    manifest = fp32.manifest.derive(kind="inference", precision="int8", quantization=quant,
                                    files={"model": "model.pdmodel",
                                           "params": "model.pdiparams"})
    manifest.save(folder)
    return Artifact(folder, manifest)


def _predictor(artifact: Any, int8_ops: list[str] | None = None) -> Any:
    """Paddle Inference with oneDNN INT8 on ``int8_ops`` (None: the artifact's list)."""
    from paddleopt.deploy.predictor import load_predictor

    options = {"onednn_int8_ops": int8_ops} if int8_ops else None
    return load_predictor(artifact, "paddle_inference", options)
