"""Paddle Inference's fixed cost per call on a small model: where the time of one run() goes
and what paddleopt's predictor adds, side by side with OpenVINO on the same model.

    python benchmarks/pi_call_cost.py            # quickstart CNN (random weights), ~2 min
    python benchmarks/pi_call_cost.py --quick    # fewer rounds (used by tests)

Rows, all batch 1 (and 32), 1 thread, alternating rounds in one process (best p50 kept):
the bare ``paddle.inference`` predictor (run() alone with the input already fed; then with
copy_from_cpu/copy_to_cpu through cached handles), paddleopt's predictor before this change
(its previous run() body, reproduced below) and now, the Config switches that could matter
(oneDNN primitive cache capacity, IR passes, memory reuse, oneDNN off) and OpenVINO fp32 /
default precision. A paddle.profiler pass counts the operators one run executes and their
summed time, so the rest of run() (executor, oneDNN primitive lookup, allocation) shows.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
from _common import parse_args, render_section, write_results
from _models import export_vision

SUITE = "pi_call_cost"


def legacy_run(predictor: Any, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """paddleopt's PaddleInferencePredictor.run() before the per-call work was hoisted into
    __init__ (names, spec dict and dtype resolved on every call)."""
    names = predictor._feed_names()  # noqa: SLF001
    specs = {s.name: s for s in predictor._inputs}  # noqa: SLF001
    for name, feed in zip(names, feeds):
        spec = specs.get(name)
        dtype = spec.dtype if spec is not None and spec.dtype != "unknown" else None
        predictor._input_handles[name].copy_from_cpu(  # noqa: SLF001
            np.ascontiguousarray(feed, dtype=dtype))
    predictor._predictor.run()  # noqa: SLF001
    return [h.copy_to_cpu() for h in predictor._output_handles]  # noqa: SLF001


def variants(art: Any, x: np.ndarray, threads: int) -> dict[str, tuple[Any, dict]]:
    """name -> (zero-argument callable doing one call, row fields)."""
    from paddleopt.deploy.predictor import load_predictor

    def pi(**options: Any) -> Any:
        return load_predictor(art, "paddle_inference", {"threads": threads, **options})

    base = pi()
    raw, handle, out = (base._predictor, base._input_handles["x"],  # noqa: SLF001
                        base._output_handles[0])  # noqa: SLF001
    handle.copy_from_cpu(x)
    bare = pi()
    bare_raw = bare._predictor  # noqa: SLF001
    bare._input_handles["x"].copy_from_cpu(x)  # noqa: SLF001

    def handles() -> Any:
        handle.copy_from_cpu(x)
        raw.run()
        return out.copy_to_cpu()

    rows: dict[str, tuple[Any, dict]] = {
        "paddle run() only": (bare_raw.run, {"backend": "paddle_inference", "onednn": True}),
        "paddle handles (copy in, run, copy out)": (handles, {"backend": "paddle_inference",
                                                              "onednn": True}),
        "paddleopt run(), before": (lambda: legacy_run(base, [x]),
                                    {"backend": "paddle_inference", "onednn": True}),
        "paddleopt run(), now": (lambda: base.run([x]), {"backend": "paddle_inference",
                                                         "onednn": True}),
    }
    for name, options in (("onednn_cache_capacity 0 (unlimited)", {"onednn_cache_capacity": 0}),
                          ("ir_optim off", {"ir_optim": False}),
                          ("new_executor", {"new_executor": True}),
                          ("onednn_bf16", {"onednn_bf16": True}),
                          ("memory_optim off", {"memory_optim": False}),
                          ("oneDNN off", {"onednn": False})):
        p = pi(**options)
        rows[f"paddleopt, {name}"] = (lambda p=p: p.run([x]),
                                      {"backend": "paddle_inference",
                                       "onednn": options.get("onednn", True)})
    from paddleopt.deploy.backends import openvino

    if openvino.is_available():
        for precision in ("fp32", "default"):
            p = load_predictor(art, "openvino", {"threads": threads, "precision": precision})
            rows[f"openvino {precision} ({p.describe()['inference_precision']})"] = (
                lambda p=p: p.run([x]), {"backend": "openvino", "onednn": None})
    return rows


def time_calls(fn: Any, iters: int, warmup: int) -> np.ndarray:
    import time

    for _ in range(warmup):
        fn()
    out = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1e3


def op_profile(art: Any, x: np.ndarray, threads: int, iters: int = 50) -> dict:
    """Operators per run() and their summed time (paddle.profiler host tracer)."""
    import tempfile

    from paddleopt.deploy.bench import profile
    from paddleopt.deploy.predictor import load_predictor

    predictor = load_predictor(art, "paddle_inference", {"threads": threads})
    with tempfile.TemporaryDirectory() as tmp:
        result = profile(predictor, [x], os.path.join(tmp, "t.json"), top_k=50, iters=iters)
    calls = sum(op["calls"] for op in result["top_ops"]) / iters
    return {"ops_per_run": round(calls, 1), "op_ms_per_run": round(result["total_ms"] / iters, 4),
            "op_types": {op["op"]: round(op["calls"] / iters, 1) for op in result["top_ops"]}}


PERF_CHILD = """
import sys, time
sys.path.insert(0, {bench!r})
import numpy as np
from _models import export_vision
from paddleopt.deploy.predictor import load_predictor
p = load_predictor(export_vision("quickstart_cnn"), "paddle_inference", {{"threads": 1}})
x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype("float32")
for _ in range(300):
    p.run([x])
print("ready", flush=True)
end = time.time() + {seconds}
while time.time() < end:
    p.run([x])
"""


def perf_shares(seconds: float = 6.0) -> dict | None:
    """Where a batch-1 run() spends its CPU time by library: ``perf record`` attached to a
    child that only calls run() (predictor creation and warm-up are not sampled). None when
    perf is not installed or not permitted."""
    import re
    import shutil
    import subprocess
    import sys
    import tempfile

    if shutil.which("perf") is None:
        return None
    from _common import REPO, python_env

    code = PERF_CHILD.format(bench=str(REPO / "benchmarks"), seconds=seconds + 4)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=python_env())
    try:
        assert child.stdout is not None
        while "ready" not in (child.stdout.readline() or "ready"):
            pass
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "perf.data")
            rec = subprocess.run(["perf", "record", "-q", "-F", "2000", "-p", str(child.pid),
                                  "-o", data, "--", "sleep", str(seconds)],
                                 capture_output=True, text=True)
            if rec.returncode != 0:
                return None
            rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "dso",
                                  "--no-children"], capture_output=True, text=True)
    finally:
        child.kill()
        child.wait()
    shares: dict[str, float] = {}
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S.*)$", line)
        if m:
            name = m.group(2).strip()
            name = "oneDNN JIT kernels" if name.startswith("[JIT]") else name
            shares[name] = shares.get(name, 0.0) + float(m.group(1))
    return {k: round(v, 1) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])
            if v >= 0.5}


def main() -> None:
    args = parse_args(SUITE, __doc__)
    import psutil

    threads = 1
    rounds, iters, warmup = (2, 100, 20) if args.quick else (5, 200, 30)
    art = export_vision("quickstart_cnn")
    rows = []
    load = [os.getloadavg()[0]]
    profile_b1 = None
    for batch in ([1] if args.quick else [1, 32]):
        x = np.random.default_rng(0).standard_normal((batch, 1, 28, 28)).astype("float32")
        calls = variants(art, x, threads)
        best: dict[str, np.ndarray] = {}
        for _ in range(rounds):  # alternating: every variant once per round
            for name, (fn, _) in calls.items():
                ms = time_calls(fn, iters, warmup)
                if name not in best or np.median(ms) < np.median(best[name]):
                    best[name] = ms
            load.append(os.getloadavg()[0])
        for name, (_, fields) in calls.items():
            ms = best[name]
            rows.append({"model": "quickstart_cnn", "variant": name, "precision": "fp32",
                         "batch_size": batch, "threads": threads,
                         "latency_ms": {"p50": float(np.median(ms)),
                                        "p90": float(np.percentile(ms, 90)),
                                        "p99": float(np.percentile(ms, 99))},
                         "throughput_per_s": batch * 1e3 / float(np.median(ms)),
                         "accuracy": None, "size_bytes": art.size_bytes(),
                         "peak_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
                         **fields})
        if batch == 1:
            profile_b1 = op_profile(art, x, threads)
    shares = None if args.quick else perf_shares()
    data = write_results(SUITE, rows, args.out, {
        "rounds": rounds, "iters": iters, "load_avg": [round(v, 2) for v in load],
        "input_shape": [1, 1, 28, 28], "profile_batch1": profile_b1, "perf_by_library": shares})
    print("\n".join(body(data)))
    if not args.quick and not args.no_docs:
        render_section(SUITE, data, body)


def body(data: dict) -> list[str]:
    rows = data["rows"]
    lines = [f"The quickstart CNN (resnet_small, random weights, input [batch, 1, 28, 28]), "
             f"{rows[0]['threads']} thread, {data['rounds']} alternating rounds of "
             f"{data['iters']} calls, the round with the best median kept; load average "
             f"{min(data['load_avg']):.1f}-{max(data['load_avg']):.1f} during the run.", "",
             "| call | backend | batch | p50 ms | p90 ms | vs paddleopt before |",
             "|---|---|---|---|---|---|"]
    before = {r["batch_size"]: r["latency_ms"]["p50"] for r in rows
              if r["variant"] == "paddleopt run(), before"}
    for r in rows:
        ratio = before[r["batch_size"]] / r["latency_ms"]["p50"]
        lines.append(f"| {r['variant']} | {r['backend']} | {r['batch_size']} | "
                     f"{r['latency_ms']['p50']:.4f} | {r['latency_ms']['p90']:.4f} | "
                     f"{ratio:.2f}x |")
    prof = data.get("profile_batch1")
    if prof:
        bare = next(r for r in rows if r["variant"] == "paddle run() only"
                    and r["batch_size"] == 1)["latency_ms"]["p50"]
        types = ", ".join(f"{k} x{v:g}" for k, v in prof["op_types"].items())
        lines += ["", f"One batch-1 run() executes {prof['ops_per_run']:g} operators "
                  f"({types}); paddle.profiler sums their time to {prof['op_ms_per_run']:.4f} "
                  f"ms per run (with the profiler's own cost) against a bare run() of "
                  f"{bare:.4f} ms: about {bare / prof['ops_per_run'] * 1e3:.0f} us per operator "
                  f"in all."]
    p50 = {(r["variant"], r["batch_size"]): r["latency_ms"]["p50"] for r in rows}
    if ("paddle run() only", 1) in p50 and ("paddleopt run(), now", 1) in p50:
        bare, before, now = (p50[("paddle run() only", 1)], p50[("paddleopt run(), before", 1)],
                             p50[("paddleopt run(), now", 1)])
        ov = next((v for (name, b), v in p50.items() if b == 1 and name.startswith(
            "openvino fp32")), None)
        lines += ["", f"Reading it (batch 1): Paddle's own run() is {bare:.3f} ms of the "
                  f"{now:.3f} ms paddleopt's predictor takes: the Python and copies around it "
                  f"are {(now - bare) / now:.0%} of a call ({(before - bare) / before:.0%} "
                  f"before run()'s per-call work moved into __init__; {before:.3f} ms), "
                  f"within this machine's noise. No Config switch removes the rest: "
                  f"oneDNN's cache capacity, "
                  f"memory reuse and the new executor change batch 1 by a few percent either "
                  f"way; turning IR passes or oneDNN off costs more. What lowers it is fewer "
                  f"bits (onednn_bf16) or another runtime: OpenVINO fp32 on the same model "
                  + (f"takes {ov:.3f} ms" if ov else "is faster") + ". The time is spent "
                  "per operator, inside Paddle's executor (below)."]
    shares = data.get("perf_by_library")
    if shares:
        kernels = sum(v for k, v in shares.items() if "JIT" in k or "dnnl" in k)
        framework = sum(v for k, v in shares.items() if "libpaddle" in k or "libc.so" in k
                        or "libstdc++" in k)
        lines += ["", "CPU time of batch-1 run() calls by library (`perf record` attached to a "
                  "process that only calls run()): " + ", ".join(
                      f"{k} {v}%" for k, v in shares.items()) + f". oneDNN (JIT kernels + "
                  f"libdnnl) {kernels:.0f}%, Paddle's executor with its allocations and "
                  f"string-keyed lookups (libpaddle, libc malloc/free, libstdc++) "
                  f"{framework:.0f}%."]
    return lines


if __name__ == "__main__":
    main()
