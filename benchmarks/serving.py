"""Serving suite: `paddleopt serve` over loopback at concurrency 32, dynamic batching vs one
request per model run, on two models:

* the quickstart CNN (compute-bound: a batch of 32 costs ~13x a batch of 1 on this CPU);
* a wide MLP on the same 28x28 input (three 4096-wide layers, random weights, no accuracy):
  memory-bound at batch 1 (every run streams ~70 MB of weights), the case batching exists for.

Each variant starts its own server process (`python -m paddleopt serve ART --port 0 ...`), is
driven by `paddleopt.serve.loadgen` (closed loop, keep-alive) for a bounded number of requests
and seconds, and reports client-side p50/p90/p99, answers/s and the server's own batch sizes.

    python benchmarks/serving.py            # quickstart (trains or reuses it) + MLP, minutes
    python benchmarks/serving.py --quick    # tiny digits models, seconds (used by tests)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, parse_args, render_section, rows_table, write_results

WORK = Path(tempfile.gettempdir()) / f"bench_serve_{os.getpid()}"
SUITE = "serving"
CONCURRENCY = 32


def build_mlp(folder: Path, hidden: int, size: int, dataset: str, depth: int = 2) -> Path:
    """An MLP inference artifact (random weights, ``depth`` hidden hidden-to-hidden layers)
    with a real manifest."""
    from paddleopt.artifact import IOSpec, Manifest, TensorSpec
    from paddleopt.data.preprocess import DATASET_DEFAULTS
    from paddleopt.utils.imports import import_paddle

    if (folder / "manifest.json").is_file():
        return folder
    paddle = import_paddle()
    paddle.seed(0)
    nn = paddle.nn
    layers = [nn.Flatten(), nn.Linear(size * size, hidden), nn.ReLU()]
    for _ in range(depth):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(hidden, 10))
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    spec = paddle.static.InputSpec([None, 1, size, size], "float32", "x")
    paddle.jit.save(model, str(folder / "model"), input_spec=[spec])
    manifest = Manifest(
        kind="inference", files={"model": "model.pdmodel", "params": "model.pdiparams"},
        io=IOSpec(inputs=[TensorSpec("x", [-1, 1, size, size])],
                  outputs=[TensorSpec("logits", [-1, 10])]),
        preprocess={"type": "image", "size": [size, size], "channels": 1,
                    **{k: v for k, v in DATASET_DEFAULTS[dataset].items()
                       if k in ("mean", "std")}},
        labels=[str(i) for i in range(10)],
        model={"source": "benchmarks/serving.py", "arch": f"mlp-{hidden}x{depth + 1}"})
    manifest.save(folder)
    return folder


def start_server(artifact: Path, max_batch: int, workers: int, max_wait_ms: float
                 ) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "paddleopt", "serve", str(artifact), "--port", "0",
           "--max-batch-size", str(max_batch), "--workers", str(workers),
           "--max-wait-ms", str(max_wait_ms), "--max-queue", "4096"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if " on http://" in line:
            return proc, line.split(" on ", 1)[1].split()[0]
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"server did not start: {' '.join(cmd)}")


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def measure(name: str, artifact: Path, variant: str, max_batch: int, workers: int,
            max_wait_ms: float, body: bytes, requests: int, seconds: float) -> dict:
    import httpx

    from paddleopt.artifact import Artifact
    from paddleopt.serve.loadgen import run_load

    proc, url = start_server(artifact, max_batch, workers, max_wait_ms)
    try:
        run_load(url, body, concurrency=CONCURRENCY, max_requests=CONCURRENCY * 4,
                 max_seconds=5)  # warm-up: oneDNN primitives for the batch sizes seen
        before = httpx.get(url + "/metrics", timeout=10).json()
        result = run_load(url, body, concurrency=CONCURRENCY, max_requests=requests,
                          max_seconds=seconds)
        after = httpx.get(url + "/metrics", timeout=10).json()
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    summary = result.summary()
    batches = after["batches"] - before["batches"]
    rows = after["batch_rows_total"] - before["batch_rows_total"]
    art = Artifact.open(artifact)
    from paddleopt.deploy.bench import available_cores

    return {
        "model": name, "variant": variant, "backend": "server",
        "precision": art.manifest.precision, "batch_size": max_batch,
        "threads": max(1, available_cores() // workers), "onednn": True,
        "latency_ms": summary["latency_ms"], "throughput_per_s": summary["throughput_per_s"],
        "accuracy": None, "size_bytes": art.size_bytes(), "peak_rss_mb": rss,
        "concurrency": CONCURRENCY, "workers": workers, "max_wait_ms": max_wait_ms,
        "requests": summary["requests"], "failed": summary["failed"],
        "seconds": summary["seconds"],
        "mean_batch_rows": round(rows / batches, 2) if batches else None,
    }


def measure_no_http(name: str, artifact: Path, variant: str, max_batch: int, workers: int,
                    max_wait_ms: float, size: int, requests: int, seconds: float) -> dict:
    """The same service (cache, pool, batcher) driven by 32 threads directly, without HTTP:
    what batching gains when the HTTP layer is not the bottleneck."""
    import threading

    import numpy as np

    from paddleopt.deploy.bench import available_cores
    from paddleopt.serve.server import ServeConfig, Service

    service = Service(ServeConfig(port=0, max_batch_size=max_batch, workers=workers,
                                  max_wait_ms=max_wait_ms, max_queue=4096), artifact)
    x = np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32)
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.perf_counter() + seconds

    def client() -> None:
        for _ in counter:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            with service.manager.use() as version:
                service.batcher.submit(version, [x]).result(60)
            with lock:
                latencies.append((time.perf_counter() - t0) * 1e3)

    try:
        for _ in range(2):  # warm-up, then measure
            latencies.clear()
            started = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            wall = time.perf_counter() - started
            counter, deadline = iter(range(requests)), time.perf_counter() + seconds
        snap = service.metrics.snapshot()
    finally:
        service.close()
    from paddleopt.artifact import Artifact

    art = Artifact.open(artifact)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return {
        "model": name, "variant": variant, "backend": "server",
        "precision": art.manifest.precision, "batch_size": max_batch,
        "threads": max(1, available_cores() // workers), "onednn": True,
        "latency_ms": {"p50": round(float(p50), 3), "p90": round(float(p90), 3),
                       "p99": round(float(p99), 3)},
        "throughput_per_s": round(len(latencies) / wall, 1), "accuracy": None,
        "size_bytes": art.size_bytes(), "peak_rss_mb": None, "concurrency": CONCURRENCY,
        "workers": workers, "max_wait_ms": max_wait_ms, "requests": len(latencies),
        "failed": 0, "seconds": round(wall, 3), "mean_batch_rows": snap["mean_batch_rows"],
    }


def sample_body(size: int) -> bytes:
    import numpy as np

    x = np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32)
    return json.dumps({"inputs": {"x": np.round(x, 4).tolist()}}).encode()


def main() -> None:
    args = parse_args(SUITE, __doc__)
    from paddleopt import api

    work = WORK
    if args.quick:
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import tiny_config

        result = api.run(tiny_config(work / "tiny"), evaluate=False)
        models = [("lenet-digits", result.artifacts["export"].path, 8),
                  ("mlp-1024x3", build_mlp(work / "mlp", 1024, 8, "digits"), 8)]
        requests, seconds = 300, 4.0
    else:
        result = api.run(REPO / "configs" / "quickstart.yaml", resume=True, evaluate=False)
        models = [("quickstart-cnn", result.artifacts["export"].path, 28),
                  ("mlp-4096x3", build_mlp(work / "mlp", 4096, 28, "mnist"), 28)]
        requests, seconds = 4000, 20.0
    rows = []
    for name, artifact, size in models:
        body = sample_body(size)
        rows.append(measure(name, Path(artifact), "batch1", 1, 2, 0.0, body, requests, seconds))
        rows.append(measure(name, Path(artifact), "dynamic", 32, 2, 2.0, body, requests,
                            seconds))
        for variant, batch, wait in (("batch1-no-http", 1, 0.0), ("dynamic-no-http", 32, 2.0)):
            rows.append(measure_no_http(name, Path(artifact), variant, batch, 2, wait, size,
                                        requests, seconds))
    summary = ratios(rows)
    meta = {"summary": summary, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}
    data = write_results(SUITE, rows, args.out, meta)
    extra = ("concurrency", "mean_batch_rows", "failed")
    print("\n".join(rows_table(rows, extra)))
    print(json.dumps(summary, indent=2))
    if not args.quick and not args.no_docs:
        render_section(SUITE, data, lambda d: rows_table(d["rows"], extra) + ["",
                                                                           *summary_lines(d)])


def ratios(rows: list[dict]) -> dict:
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        def row(variant: str, model: str = model) -> dict:
            return next(r for r in rows if r["model"] == model and r["variant"] == variant)

        one, dyn = row("batch1"), row("dynamic")
        one_nh, dyn_nh = row("batch1-no-http"), row("dynamic-no-http")
        out[model] = {"throughput_ratio": round(dyn["throughput_per_s"] /
                                                max(one["throughput_per_s"], 1e-9), 2),
                      "p99_ms_batch1": one["latency_ms"]["p99"],
                      "p99_ms_dynamic": dyn["latency_ms"]["p99"],
                      "throughput_ratio_no_http": round(dyn_nh["throughput_per_s"] /
                                                        max(one_nh["throughput_per_s"], 1e-9), 2)}
    return out


def summary_lines(data: dict) -> list[str]:
    load = [f"- 1-minute load average at the end: {data.get('loadavg_1m_at_end')} on "
            f"{data['machine'].get('cores')} cores (the server, the load generator and any "
            f"other work share them)."]
    return load + [f"- {m}: over HTTP, dynamic batching serves **{v['throughput_ratio']}x** the "
                   f"answers/s of batch-1 serving at concurrency {CONCURRENCY} (p99 "
                   f"{v['p99_ms_dynamic']} ms vs {v['p99_ms_batch1']} ms); the same service "
                   f"without HTTP (32 threads calling the batcher): "
                   f"**{v['throughput_ratio_no_http']}x**." for m, v in data["summary"].items()]


if __name__ == "__main__":
    import shutil

    WORK.mkdir(parents=True, exist_ok=True)
    try:
        main()
    finally:  # the temporary models and artifacts are not results
        shutil.rmtree(WORK, ignore_errors=True)
