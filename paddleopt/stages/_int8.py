"""Measuring and verifying INT8 inference models (shared by the ptq and qat stages).

Every number here comes from Paddle Inference with oneDNN, the way ``paddleopt bench`` and the
report run an artifact: INT8 artifacts get ``enable_mkldnn_int8()`` (backend option
``onednn_int8: auto``) limited to the op types the artifact records
(``quantization.onednn_int8_ops``), fp32 ones plain oneDNN.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paddleopt.utils.errors import StageError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact
    from paddleopt.stages.base import StageContext


@dataclass
class LatencyConfig:
    """How candidates and the fp32 baseline are timed (Paddle Inference, oneDNN).

    Attributes:
        batch_size: samples per run() call.
        threads: CPU threads (0: every core available to the process).
        warmup, iters, max_seconds: the timing loop (``deploy.bench.measure_latency``).
    """

    batch_size: int = 32
    threads: int = 0
    warmup: int = 5
    iters: int = 50
    max_seconds: float = 2.0
    rounds: int = 2  # candidate and fp32 timed alternately this many times; best p50 kept

    def validate(self) -> tuple[str, str] | None:
        if self.batch_size < 1 or self.threads < 0 or self.iters < 1 or self.warmup < 0:
            return ("latency needs batch_size >= 1, threads >= 0, iters >= 1, warmup >= 0",
                    "use e.g. latency: {batch_size: 32, threads: 0}")
        if self.max_seconds <= 0 or self.rounds < 1:
            return ("latency.max_seconds must be > 0 and rounds >= 1",
                    "use e.g. max_seconds: 2.0, rounds: 2")
        return None


def predictor(artifact: Artifact, threads: int) -> Any:
    """A Paddle Inference predictor (oneDNN; INT8 kernels for int8 artifacts).

    The oneDNN INT8 passes print a ~25-line summary to stderr for every predictor; a stage
    that builds one per candidate would bury its log, so stderr is muted while it is built
    (a failure still raises, with Paddle's message, from ``load_predictor``)."""
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.utils.native_output import fd_silenced

    with fd_silenced(2):
        return load_predictor(artifact, "paddle_inference", {"threads": threads})


def accuracy(pred: Any, feeds: list[np.ndarray], labels: np.ndarray,
             batch_size: int = 256) -> float:
    from paddleopt.deploy.accuracy import accuracy as acc

    return acc(pred, feeds, labels, batch_size)


def timing(pred: Any, feeds: list[np.ndarray], cfg: LatencyConfig) -> dict[str, Any]:
    """p50/p90/p99 latency and throughput at ``cfg.batch_size`` (inputs tiled to fill it)."""
    from paddleopt.deploy.bench import measure_latency

    n = len(feeds[0])
    reps = int(np.ceil(cfg.batch_size / max(1, n)))
    batch = [np.concatenate([f] * reps)[:cfg.batch_size] for f in feeds]
    out = measure_latency(pred, batch, cfg.warmup, cfg.iters, cfg.max_seconds)
    return {"latency_ms": {k: round(out["latency_ms"][k], 4) for k in ("p50", "p90", "p99")},
            "throughput_per_s": round(out["throughput_per_s"], 2),
            "batch_size": cfg.batch_size}


def paired_timing(pred: Any, reference: Any, feeds: list[np.ndarray], cfg: LatencyConfig
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time ``pred`` and ``reference`` alternately (``cfg.rounds`` times each) and keep each
    one's best round: on a shared machine, load changes between minutes, and a speedup is
    only meaningful between numbers taken in the same window."""
    best: list[dict[str, Any] | None] = [None, None]
    for _ in range(cfg.rounds):
        for i, p in enumerate((pred, reference)):
            t = timing(p, feeds, cfg)
            if best[i] is None or t["latency_ms"]["p50"] < best[i]["latency_ms"]["p50"]:
                best[i] = t
    return best[0], best[1]  # type: ignore[return-value]


def logits(pred: Any, feeds: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    from paddleopt.deploy.accuracy import predict_batched

    return predict_batched(pred, feeds, batch_size)


def compare_outputs(reference: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """How close INT8 outputs are to the reference (fp32 or fake-quant) outputs."""
    scale = float(np.abs(reference).max()) or 1.0
    diff = np.abs(got - reference)
    return {"max_abs_diff": round(float(diff.max()), 6),
            "max_rel_diff": round(float(diff.max()) / scale, 6),
            "mean_rel_diff": round(float(diff.mean()) / scale, 6),
            "top1_agreement": round(float((got.argmax(-1) == reference.argmax(-1)).mean()), 6)}


def verify_int8(model_dir: Path, ctx: StageContext, feeds: list[np.ndarray] | None = None,
                names: list[str] | None = None, int8_ops: list[str] | None = None
                ) -> dict[str, Any]:
    """Run the model once under oneDNN INT8 in a subprocess (``compress.int8_check``) and
    fail when no INT8 kernel executes: a "quantized" model running fp32 is a bug, not a
    result. ``int8_ops`` limits INT8 to those op types, as the artifact will be deployed.
    Returns the evidence recorded in the manifest's checks."""
    from paddleopt.compress.int8_check import int8_kernel_report

    inputs = None
    if feeds is not None and names is not None:
        inputs = {n: f[:1] for n, f in zip(names, feeds, strict=True)}
    report = int8_kernel_report(model_dir, inputs=inputs, int8_ops=int8_ops)
    keep = ("int8_kernels", "fp32_kernels", "int8_convs", "fp32_convs", "int8_ops",
            "int8_op_types", "fp32_compute_ops", "quantized_compute_ops",
            "unquantized_compute_ops", "compute_impls", "isa", "kernels", "int8_op_list")
    summary = {k: report.get(k) for k in keep}
    ctx.log.info("[%s] oneDNN INT8 check: %s INT8 / %s fp32 compute kernels (%s)",
                 ctx.stage_id, summary["int8_kernels"], summary["fp32_kernels"],
                 ", ".join(summary["compute_impls"] or []) or "no compute primitive")
    if report.get("int8_kernels") and report.get("fp32_kernels"):
        why = (f"INT8 is limited to {', '.join(int8_ops)} (onednn_int8_ops)" if int8_ops
               else "skipped layers do, anything else costs speed")
        ctx.log.warning("[%s] %d compute kernel(s) still run fp32 under oneDNN INT8 (%s); "
                        "%s", ctx.stage_id, report["fp32_kernels"],
                        report.get("fp32_compute_op_types") or "-", why)
    if not report.get("int8_kernels"):
        raise StageError(
            f"the quantized model in {model_dir} runs no INT8 kernel under Paddle Inference "
            f"oneDNN INT8 ({report.get('fp32_kernels')} fp32 compute kernels ran).",
            "check that the CPU has AVX512/VNNI or AVX2 and that quantizable_op_types covers "
            "the model's conv/matmul ops; see `python -m paddleopt.compress.int8_check DIR`.")
    return summary


def newest_checkpoint_for(src: Artifact, ctx: StageContext) -> Artifact | None:
    """The checkpoint ``src`` (an inference artifact) was exported from, if it is one of
    this run's artifacts: export's lineage entry records its parent's digest."""
    if not src.manifest.lineage:
        return None
    parent = src.manifest.lineage[-1].parent_digest
    for art in reversed(list(ctx.artifacts.values())):
        if art.kind == "checkpoint" and parent and art.digest() == parent:
            return art
    return None
