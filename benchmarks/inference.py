"""Inference suite: the quickstart model on dygraph eager vs Paddle Inference without and with
oneDNN (1 and 2 threads), batch 1 and 32, side by side in one process.

    python benchmarks/inference.py            # trains/reuses work_dirs/quickstart (minutes)
    python benchmarks/inference.py --quick    # tiny digits model, seconds (used by tests)
"""
from __future__ import annotations

import tempfile

from _common import REPO, parse_args, render_section, rows_table, write_results

SUITE = "inference"


def deployments(quick: bool) -> list[tuple[str, str, dict]]:
    threads = [1] if quick else [1, 2]
    out = [("eager", "eager", {})]
    for t in threads:
        out.append((f"pi-native-t{t}", "paddle_inference", {"onednn": False, "threads": t}))
        out.append((f"pi-onednn-t{t}", "paddle_inference", {"onednn": True, "threads": t}))
    return out


def main() -> None:
    args = parse_args(SUITE, __doc__)
    from paddleopt import api
    from paddleopt.config.sections import EvaluateConfig
    from paddleopt.report.evaluate import benchmark_rows

    if args.quick:
        import sys

        sys.path.insert(0, str(REPO / "tests"))
        from conftest import tiny_config

        result = api.run(tiny_config(tempfile.mkdtemp(prefix="bench_inf_")), evaluate=False)
        cfg = EvaluateConfig(batch_sizes=[1, 8], warmup=2, iters=20, max_seconds=1.0,
                             eval_samples=200)
    else:
        result = api.run(REPO / "configs" / "quickstart.yaml", resume=True, evaluate=False)
        cfg = EvaluateConfig(batch_sizes=[1, 32], warmup=20, iters=300, max_seconds=8.0,
                             eval_samples=2000)
    arts = {"eager": result.artifacts["train"], "paddle_inference": result.artifacts["export"]}
    rows = []
    for name, backend, options in deployments(args.quick):
        rows += benchmark_rows(arts[backend], backend, options, cfg, name=name)
    for row in rows:
        row.pop("config", None)
    summary = speedups(rows)
    data = write_results(SUITE, rows, args.out, {"summary": summary})
    print("\n".join(rows_table(rows)))
    print(summary)
    if not args.quick and not args.no_docs:
        render_section(SUITE, data, lambda d: rows_table(d["rows"]) + ["", *summary_lines(d)])


def speedups(rows: list[dict]) -> dict:
    """Best Paddle Inference latency vs eager, per batch size (p50 ratio)."""
    out = {}
    for batch in sorted({r["batch_size"] for r in rows}):
        at = [r for r in rows if r["batch_size"] == batch]
        eager = next(r for r in at if r["backend"] == "eager")
        best = min((r for r in at if r["backend"] == "paddle_inference"),
                   key=lambda r: r["latency_ms"]["p50"])
        out[f"batch{batch}"] = {"best": best["variant"],
                                "speedup_vs_eager_p50": round(eager["latency_ms"]["p50"] /
                                                              best["latency_ms"]["p50"], 2)}
    return out


def summary_lines(data: dict) -> list[str]:
    return [f"- batch {k[5:]}: best deployment `{v['best']}` is **{v['speedup_vs_eager_p50']}x**"
            f" faster than dygraph eager (p50 latency)." for k, v in data["summary"].items()]


if __name__ == "__main__":
    main()
