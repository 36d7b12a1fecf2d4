"""Distributed suite: training samples/s of the same global batch in 1 process (1 and 2 CPU
threads) vs 2 processes (gloo, 1 thread each), side by side, through `paddleopt train`.

Throughput is measured inside the training loop (all ranks' samples / slowest rank's training
seconds), so the launcher's start-up (~5-8 s: every rank imports Paddle) is reported apart as
`wall_seconds`. Each variant runs in its own process because CPU threads are fixed when Paddle
is imported.

    python benchmarks/distributed.py            # MNIST ResNet-small, 8192 samples (minutes)
    python benchmarks/distributed.py --quick    # LeNet on digits, seconds (used by tests)
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import yaml
from _common import parse_args, python_env, render_section, rows_table, run_timed, write_results

WORK = Path(tempfile.gettempdir()) / f"bench_dist_{os.getpid()}"
SUITE = "distributed"


def pipeline(work_dir: Path, quick: bool, batch: int) -> dict:
    if quick:
        model = {"arch": "lenet", "num_classes": 10, "in_channels": 1}
        data = {"dataset": "digits", "batch_size": batch, "eval_batch_size": 256,
                "shuffle": False, "eval_subset": 200}
        epochs = 1
    else:
        model = {"arch": "resnet_small", "num_classes": 10, "in_channels": 1,
                 "kwargs": {"depths": [1, 1, 1], "widths": [16, 32, 64]}}
        data = {"dataset": "mnist", "batch_size": batch, "eval_batch_size": 500,
                "shuffle": False, "train_subset": 8192, "eval_subset": 2000}
        epochs = 1
    return {"name": "bench_dist", "work_dir": str(work_dir), "seed": 1, "model": model,
            "data": data, "evaluate": {"targets": []},
            "stages": {"train": {"epochs": epochs, "progress_bar": False,
                                 "optimizer": {"name": "momentum", "lr": 0.05},
                                 "schedule": {"name": "constant"}}}}


def run_variant(work: Path, name: str, quick: bool, nproc: int, threads: int,
                global_batch: int) -> dict:
    folder = work / name
    config = pipeline(folder, quick, global_batch // nproc)
    cfg_file = work / f"{name}.yaml"
    cfg_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    cmd = [sys.executable, "-m", "paddleopt", "train", "-c", str(cfg_file), "--fresh"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    _, wall, peak = run_timed(cmd, python_env(OMP_NUM_THREADS=str(threads)), timeout=1800)
    manifest = json.loads((folder / "01_train" / "manifest.json").read_text())
    metrics = manifest["metrics"]
    last = metrics["history"][-1]
    if nproc > 1:
        dist = metrics["distributed"]
        samples_per_s = dist["train_samples_per_s"]
        step_ms = dist["ranks"][0]["step_ms"]
    else:
        samples_per_s = round(last["train_samples"] / last["train_seconds"], 1)
        step_ms = last["step_ms"]
    weights = folder / "01_train" / manifest["files"]["weights"]
    return {
        "model": manifest["model"]["arch"], "variant": name, "backend": "eager",
        "precision": "fp32", "batch_size": global_batch, "threads": threads, "onednn": None,
        "latency_ms": {k: step_ms[k] for k in ("p50", "p90", "p99")},
        "throughput_per_s": samples_per_s, "accuracy": metrics.get("accuracy"),
        "size_bytes": weights.stat().st_size, "peak_rss_mb": peak,
        "processes": nproc, "per_rank_batch": global_batch // nproc,
        "train_samples": sum(h["train_samples"] for h in metrics["history"]) * nproc,
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    args = parse_args(SUITE, __doc__)
    work = WORK
    global_batch = 64 if args.quick else 128
    variants = [("1proc-1thread", 1, 1), ("2proc-1thread", 2, 1)]
    if not args.quick:
        variants.insert(1, ("1proc-2threads", 1, 2))
    rows = [run_variant(work, name, args.quick, nproc, threads, global_batch)
            for name, nproc, threads in variants]
    base = rows[0]["throughput_per_s"]
    summary = {r["variant"]: {"speedup_vs_1proc_1thread": round(r["throughput_per_s"] / base, 2),
                              "wall_seconds": r["wall_seconds"]} for r in rows}
    meta = {"summary": summary, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}
    data = write_results(SUITE, rows, args.out, meta)
    extra = ("processes", "per_rank_batch", "wall_seconds")
    print("\n".join(rows_table(rows, extra)))
    print(json.dumps(summary, indent=2))
    if not args.quick and not args.no_docs:
        render_section(SUITE, data, lambda d: rows_table(d["rows"], extra) + [
            "", "latency = one training step (forward+backward+update, rank 0); samples/s = "
            "all ranks' samples / slowest rank's training time (launcher start-up excluded, "
            "see wall_seconds).", f"1-minute load average at the end: "
            f"{d.get('loadavg_1m_at_end')} on {d['machine'].get('cores')} cores."])


if __name__ == "__main__":
    import shutil

    WORK.mkdir(parents=True, exist_ok=True)
    try:
        main()
    finally:  # the temporary models and artifacts are not results
        shutil.rmtree(WORK, ignore_errors=True)
