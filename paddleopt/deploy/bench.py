"""Measuring predictors: latency percentiles, throughput, peak RSS, op profiles.

Used by ``paddleopt bench``, the report and ``benchmarks/``. Every function takes a
``Predictor`` (any backend) and numpy feeds, so the numbers of different backends come from
the same loop.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from paddleopt.artifact import TensorSpec
    from paddleopt.deploy.predictor import Predictor

# Machine facts (cores, CPU, ISA flags) are paddleopt.utils.machine's.


# -- inputs ------------------------------------------------------------------------------------
def make_feeds(input_specs: list[TensorSpec], batch_size: int,
               rng: np.random.Generator | None = None, *,
               dims: dict[str, list[int]] | None = None, dynamic_dim: int | None = 16,
               int_high: int = 2) -> list[np.ndarray]:
    """Random inputs for ``input_specs``.

    Args:
        input_specs: the manifest's io.inputs.
        batch_size: replaces a dynamic (-1) first dimension; a fixed first dimension is kept
            (the model cannot take another batch size).
        rng: numpy Generator (default: seeded with 0, so runs are repeatable).
        dims: input name -> full shape, overriding the spec (e.g. a sequence length).
        dynamic_dim: value for any other dynamic dimension (sequence length, image side) of
            an input without a recorded ``opt_shape``; None: such an input is an error
            (foreign models must state their shapes, see paddleopt.artifact.shapes).
        int_high: integer inputs are drawn from [0, int_high): small non-negative values are
            valid ids for any embedding table and any segment/type-id input.
    """
    rng = rng or np.random.default_rng(0)
    feeds = []
    for spec in input_specs:
        if dims and spec.name in dims:
            shape = list(dims[spec.name])
        else:
            if not spec.shape:
                from paddleopt.utils.errors import UserError

                raise UserError(f"input '{spec.name}' has no known shape.",
                                f"pass dims={{'{spec.name}': [...]}} (or --shape) explicitly.")
            shape = _synthetic_shape(spec, batch_size, dynamic_dim)
        dtype = np.dtype(spec.dtype if spec.dtype not in ("unknown", "") else "float32")
        if dtype.kind in "iu":
            feeds.append(rng.integers(0, int_high, size=shape).astype(dtype))
        elif dtype.kind == "b":
            feeds.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            feeds.append(rng.standard_normal(size=shape).astype(dtype))
    return feeds


def _synthetic_shape(spec: TensorSpec, batch_size: int, dynamic_dim: int | None) -> list[int]:
    declared = spec.shape
    if getattr(spec, "opt_shape", None):
        opt = list(spec.opt_shape)
        if declared and declared[0] == -1:
            opt[0] = batch_size
        return opt
    if dynamic_dim is None and any(d == -1 for d in declared[1:]):
        from paddleopt.utils.errors import UserError

        raise UserError(f"input '{spec.name}' {declared} has dynamic dimensions and no shape "
                        f"to use for them.",
                        f"give one: --shape {spec.name}=1x... (MIN:OPT:MAX for a range), or "
                        f"source.shapes in the pipeline config.")
    return [batch_size if (i == 0 and d == -1) else (dynamic_dim if d == -1 else d)
            for i, d in enumerate(declared)]


# -- latency -------------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """Samples this process's resident set size (psutil) in the background; keeps the peak.

    It is the whole process's RSS: the Python interpreter, the loaded libraries and every
    model alive in the process count, not only the predictor being measured. Compare peaks
    measured in fresh processes. Paddle Inference's run() holds the GIL, so samples land
    between runs; its allocator keeps freed blocks, so the RSS between runs still includes the
    buffers a run needed.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        super().__init__(daemon=True)
        import psutil

        self._process = psutil.Process()
        self.interval_s = interval_s
        self.peak = self._process.memory_info().rss
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._sample()
            self._stop_event.wait(self.interval_s)

    def _sample(self) -> None:
        self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> float:
        """Stop sampling; return the peak in MB."""
        self._stop_event.set()
        self.join()
        self._sample()
        return self.peak / (1 << 20)


def measure_latency(predictor: Predictor, feeds_for_batch: list[np.ndarray], warmup: int = 10,
                    iters: int = 100, max_seconds: float = 10.0, *,
                    batch_size: int | None = None) -> dict[str, Any]:
    """Time ``predictor.run(feeds_for_batch)`` one call at a time.

    Args:
        predictor: any backend's predictor.
        feeds_for_batch: one batch of inputs (see ``make_feeds``).
        warmup: untimed runs first (allocations, oneDNN primitive creation, lazy init).
        iters: timed runs, unless ``max_seconds`` runs out first (at least one timed run).
        max_seconds: time budget of the timed loop; warmup stops at the same budget.
        batch_size: samples per call (default: the first dimension of the first input).

    Returns:
        ``{"latency_ms": {"p50", "p90", "p99", "mean", "min", "max"}, "throughput_per_s"
        (samples per second = batch_size * iters / timed seconds), "iters", "warmup",
        "batch_size", "seconds", "peak_rss_mb"}``; ``peak_rss_mb`` is the process RSS peak
        sampled by ``RssSampler`` during warmup and the timed runs.
    """
    if batch_size is None:
        first = feeds_for_batch[0] if feeds_for_batch else None
        batch_size = int(first.shape[0]) if first is not None and first.ndim else 1
    sampler = RssSampler()
    sampler.start()
    try:
        done_warmup = 0
        start = time.perf_counter()
        while done_warmup < warmup and time.perf_counter() - start < max_seconds:
            predictor.run(feeds_for_batch)
            done_warmup += 1
        latencies: list[float] = []
        start = time.perf_counter()
        while len(latencies) < max(iters, 1):
            t0 = time.perf_counter()
            predictor.run(feeds_for_batch)
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            if t1 - start >= max_seconds:
                break
        seconds = time.perf_counter() - start
    finally:
        peak_mb = sampler.stop()
    ms = np.asarray(latencies) * 1e3
    return {
        "latency_ms": {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
                       "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()),
                       "min": float(ms.min()), "max": float(ms.max())},
        "throughput_per_s": batch_size * len(latencies) / float(ms.sum() / 1e3),
        "iters": len(latencies),
        "warmup": done_warmup,
        "batch_size": batch_size,
        "seconds": seconds,
        "peak_rss_mb": round(peak_mb, 1),
    }


def profile(predictor: Predictor, feeds: list[np.ndarray], out_json: str | Path,
            top_k: int = 10, iters: int = 10) -> dict[str, Any]:
    """Profile ``iters`` runs, write a chrome trace (open in chrome://tracing or Perfetto) to
    ``out_json`` and return the ``top_k`` operator types by total time.

    Paddle backends use ``paddle.profiler`` (host tracer), which records every operator that
    Paddle Inference's executor runs. ``Config.enable_profile()`` is not used: on paddle
    2.6.2 it prints nothing and writes nothing. ONNX Runtime uses its own session profiler.
    The lite backend is refused (nothing here can see inside Paddle Lite).

    Returns:
        ``{"tool", "trace", "iters", "total_ms", "top_ops": [{"op", "calls", "total_ms",
        "avg_ms", "percent"}]}``; percent is of the summed operator time.
    """
    if predictor.backend == "openvino":
        from paddleopt.utils.errors import UserError

        raise UserError("the openvino backend has no chrome-trace profile here.",
                        "profile the same model on paddle_inference or onnxruntime.")
    if predictor.backend == "lite":
        from paddleopt.utils.errors import UserError

        raise UserError("the lite backend cannot be profiled here: paddle.profiler does not see "
                        "inside Paddle Lite, and the paddlelite 2.13rc0 Python wheel has no "
                        "profiler of its own.",
                        "profile the same model's inference artifact (paddle_inference) or its "
                        "ONNX file; on the device, use a Lite build with LITE_WITH_PROFILE=ON.")
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    if predictor.backend == "onnxruntime":
        predictor.profile(feeds, out_json, iters=iters)  # type: ignore[attr-defined]
        tool, times = "onnxruntime", _ort_op_times(out_json)
    else:
        _paddle_profile(predictor, feeds, out_json, iters)
        tool, times = "paddle.profiler", _paddle_op_times(out_json)
    total_us = sum(t for t, _ in times.values()) or 1.0
    ranked = sorted(times.items(), key=lambda kv: kv[1][0], reverse=True)[:top_k]
    return {
        "tool": tool,
        "trace": str(out_json),
        "iters": iters,
        "total_ms": total_us / 1e3,
        "top_ops": [{"op": op, "calls": calls, "total_ms": us / 1e3, "avg_ms": us / 1e3 / calls,
                     "percent": 100.0 * us / total_us} for op, (us, calls) in ranked],
    }


def _paddle_profile(predictor: Predictor, feeds: list[np.ndarray], out_json: Path,
                    iters: int) -> None:
    from paddleopt.utils.imports import import_paddle

    import_paddle()
    from paddle import profiler

    predictor.run(feeds)  # the first run builds kernels and caches; keep it out of the trace
    # on_trace_ready must be given: its default writes ./profiler_log/ into the working dir.
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                             on_trace_ready=lambda _prof: None)
    prof.start()
    # stop() prints a "Perf Summary" table with print(); keep our stdout for our output.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            for _ in range(iters):
                predictor.run(feeds)
                prof.step()
        finally:
            prof.stop()
    prof.export(path=str(out_json), format="json")


_DURATION_SUFFIX = re.compile(r"\[[^\]]*\]$")


def _paddle_op_times(trace: Path) -> dict[str, tuple[float, int]]:
    """op type -> (total microseconds, calls) from a paddle.profiler chrome trace.

    Top-level operator events have cat "Operator" and names like "conv2d[1.218 ms]";
    "OperatorInner" events (infer_shape, compute) are their parts and are not summed.
    """
    events = json.loads(trace.read_text())["traceEvents"]
    times: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for event in events:
        if event.get("cat") == "Operator" and "dur" in event:
            entry = times[_DURATION_SUFFIX.sub("", event["name"]).strip()]
            entry[0] += float(event["dur"])
            entry[1] += 1
    return {op: (us, int(calls)) for op, (us, calls) in times.items()}


def _ort_op_times(trace: Path) -> dict[str, tuple[float, int]]:
    """op type -> (total microseconds, calls) from an onnxruntime profile (cat "Node",
    one "<node>_kernel_time" event per node execution, op type in args.op_name).

    ORT cannot start profiling after the first run, so the events of the first "model_run"
    (the warm-up) are left out here; the trace file keeps them.
    """
    events = json.loads(trace.read_text())
    runs = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    after = runs[0][1] if len(runs) > 1 else float("-inf")
    times: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for event in events:
        if (event.get("cat") == "Node" and event.get("ts", 0) > after
                and str(event.get("name", "")).endswith("_kernel_time")):
            entry = times[event.get("args", {}).get("op_name", event["name"])]
            entry[0] += float(event.get("dur", 0))
            entry[1] += 1
    return {op: (us, int(calls)) for op, (us, calls) in times.items()}


def format_profile(result: dict[str, Any]) -> str:
    """The top-ops table of ``profile()`` as text (what ``paddleopt bench --profile`` prints)."""
    lines = [f"top ops by total time ({result['tool']}, {result['iters']} runs, "
             f"{result['total_ms']:.2f} ms of operator time; trace: {result['trace']}):",
             f"  {'op':<32} {'calls':>6} {'total ms':>9} {'avg ms':>8} {'share':>6}"]
    for op in result["top_ops"]:
        lines.append(f"  {op['op'][:32]:<32} {op['calls']:>6} {op['total_ms']:>9.3f} "
                     f"{op['avg_ms']:>8.4f} {op['percent']:>5.1f}%")
    if not result["top_ops"]:
        lines.append("  (no operator events recorded)")
    return "\n".join(lines)
