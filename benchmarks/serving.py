"""Serving suite: `paddleopt serve` over loopback at concurrency 32, dynamic batching vs one
request per model run, with the same 2 workers (predictors) and 1 CPU thread per predictor.

Models (full run):

* the quickstart CNN (28x28 MNIST; a batch of 32 costs ~1/3 per sample of a batch of 1 here);
* a wide MLP on the same input (784-4096-4096-4096-10, random weights): a long batch-1 run
  (~7 ms, weights streamed from memory) that batching amortizes;
* a MobileNetV2-style CNN at 3x96x96 (random weights): convolutions at a realistic input size,
  already efficient at batch 1 on this CPU, and a 110 KB input where JSON is costly.

Per model, side by side (all servers started first, then the load alternates between them in
rounds so that the shared machine's load hits every variant alike):

* `batch1` / `dynamic`: .npy request bodies, predictors as threads (the default executor);
* `batch1-json` / `dynamic-json`: the same with JSON bodies;
* `batch1-process` / `dynamic-process`: .npy bodies, `--executor process` (Paddle Inference's
  run() holds the GIL, so only processes run the model in parallel with HTTP);
* `dynamic-h11` / `dynamic-process-h11`: the HTTP stack before uvloop + httptools (uvicorn
  on h11 and asyncio), for the server CPU per answer before/after;
* `batch1-no-http` / `dynamic-no-http`: the same service driven by 32 threads calling the
  batcher directly: what batching gains without HTTP;
* `model-b1` / `model-b32`: one predictor (1 thread) run directly: the model's own batch gain,
  the ceiling of any serving-level ratio.

Each HTTP row reports client-side p50/p90/p99 and answers/s from `paddleopt.serve.loadgen`
(closed loop, keep-alive, bounded by request count and seconds), the mean rows per model run
(from /metrics), and CPU milliseconds per answer of the server (with its executor processes)
and of the load generator: on a saturated shared machine answers/s follow the CPU share a
variant gets, while CPU per answer does not, so both ratios are in the summary. The serving
efficiency is the best dynamic-batching answers/s over HTTP divided by the model's own
batch-32 samples/s (`model-b32`): what share of the model's batched speed reaches clients.

    python benchmarks/serving.py            # quickstart (trains or reuses it) + MLP + MobileNet
    python benchmarks/serving.py --quick    # tiny models, short rounds (used by tests)
"""
from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (REPO, parse_args, python_env, render_section, rows_table, start_until,
                     stop_process, write_results)

WORK = Path(tempfile.gettempdir()) / f"bench_serve_{os.getpid()}"
SUITE = "serving"
CONCURRENCY = 32
WORKERS = 2
WARMUP = CONCURRENCY * 8  # requests per variant before measuring (--quick: fewer)


@dataclass(frozen=True)
class Variant:
    name: str
    max_batch: int
    max_wait_ms: float
    executor: str
    body: str  # npy | json
    workers: int = WORKERS
    threads: int = 1  # CPU threads per predictor
    http: str = "fast"  # fast: httptools + uvloop (the default); h11: h11 + asyncio (before)


HTTP_VARIANTS = (Variant("batch1", 1, 0.0, "thread", "npy"),
                 Variant("dynamic", 32, 2.0, "thread", "npy"),
                 # the HTTP stack before uvloop/httptools, for the per-request CPU before/after
                 Variant("dynamic-h11", 32, 2.0, "thread", "npy", http="h11"),
                 Variant("dynamic-process-h11", 32, 2.0, "process", "npy", http="h11"),
                 Variant("batch1-json", 1, 0.0, "thread", "json"),
                 Variant("dynamic-json", 32, 2.0, "thread", "json"),
                 Variant("batch1-process", 1, 0.0, "process", "npy"),
                 Variant("dynamic-process", 32, 2.0, "process", "npy"))
# Full run only: the same comparison with one predictor of 2 threads (same cores). One worker
# lets the queue fill while it runs, so batches are about twice as large (~concurrency / 2
# instead of / 3 in a closed loop), and batch-1 runs cannot use the second thread well.
HTTP_VARIANTS_1X2 = (Variant("batch1-1x2", 1, 0.0, "thread", "npy", 1, 2),
                     Variant("dynamic-1x2", 32, 2.0, "thread", "npy", 1, 2))
NO_HTTP_VARIANTS = (Variant("batch1-no-http", 1, 0.0, "thread", "npy"),
                    Variant("dynamic-no-http", 32, 2.0, "thread", "npy"))


# -- models ----------------------------------------------------------------------------------
def save_random_model(folder: Path, layer: Any, shape: list[int], arch: str,
                      preprocess: dict[str, Any]) -> Path:
    """An inference artifact with random weights and a real manifest (no accuracy)."""
    from paddleopt.artifact import IOSpec, Manifest, TensorSpec
    from paddleopt.utils.imports import import_paddle

    if (folder / "manifest.json").is_file():
        return folder
    paddle = import_paddle()
    layer.eval()
    folder.mkdir(parents=True, exist_ok=True)
    spec = paddle.static.InputSpec([None, *shape], "float32", "x")
    paddle.jit.save(layer, str(folder / "model"), input_spec=[spec])
    Manifest(kind="inference", files={"model": "model.pdmodel", "params": "model.pdiparams"},
             io=IOSpec(inputs=[TensorSpec("x", [-1, *shape])],
                       outputs=[TensorSpec("logits", [-1, 10])]),
             preprocess=preprocess, labels=[str(i) for i in range(10)],
             model={"source": "benchmarks/serving.py", "arch": arch}).save(folder)
    return folder


def build_mlp(folder: Path, hidden: int, size: int, dataset: str, depth: int = 2) -> Path:
    """784(or size^2)-hidden-...-10 MLP, ``depth`` hidden-to-hidden layers."""
    from paddleopt.data.preprocess import DATASET_DEFAULTS
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    paddle.seed(0)
    nn = paddle.nn
    layers = [nn.Flatten(), nn.Linear(size * size, hidden), nn.ReLU()]
    for _ in range(depth):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(hidden, 10))
    pre = {"type": "image", "size": [size, size], "channels": 1,
           **{k: v for k, v in DATASET_DEFAULTS[dataset].items() if k in ("mean", "std")}}
    return save_random_model(folder, model, [1, size, size], f"mlp-{hidden}x{depth + 1}", pre)


def build_mobilenet(folder: Path, size: int) -> Path:
    from paddleopt.models.registry import build_model
    from paddleopt.utils.imports import import_paddle

    import_paddle().seed(0)
    model = build_model({"arch": "mobilenet_v2_small", "in_channels": 3, "num_classes": 10})
    pre = {"type": "image", "size": [size, size], "channels": 3, "mean": [0.5] * 3,
           "std": [0.25] * 3}
    return save_random_model(folder, model, [3, size, size], "mobilenet_v2_small", pre)


def sample(shape: list[int]) -> Any:
    import numpy as np

    return np.random.default_rng(0).random((1, *shape), dtype=np.float32)


def bodies(shape: list[int]) -> dict[str, tuple[bytes, str]]:
    import numpy as np

    x = sample(shape)
    buf = io.BytesIO()
    np.save(buf, x)
    return {"npy": (buf.getvalue(), "application/x-npy"),
            "json": (json.dumps({"inputs": {"x": np.round(x, 4).tolist()}}).encode(),
                     "application/json")}


# -- measuring -------------------------------------------------------------------------------
def tree_peak_rss_mb(pid: int) -> float | None:
    """Largest peak RSS (VmHWM) in a process tree: the server or one of its executors."""
    import psutil

    peak = 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    for proc in procs:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return round(peak / 1024, 1) if peak else None


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children (the executor processes)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class Tally:
    """What one variant accumulated over its rounds."""

    def __init__(self) -> None:
        self.ok = self.failed = self.batches = self.rows = 0
        self.seconds = self.server_cpu = self.client_cpu = 0.0
        self.latencies: list[float] = []

    def row(self, base: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        p50, p90, p99 = (np.percentile(self.latencies, [50, 90, 99]) if self.latencies
                         else (0.0, 0.0, 0.0))
        per = max(self.ok, 1)
        return {**base,
                "latency_ms": {"p50": round(float(p50), 3), "p90": round(float(p90), 3),
                               "p99": round(float(p99), 3)},
                "throughput_per_s": round(self.ok / self.seconds, 1) if self.seconds else 0.0,
                "requests": self.ok + self.failed, "failed": self.failed,
                "seconds": round(self.seconds, 2),
                "mean_batch_rows": round(self.rows / self.batches, 2) if self.batches else None,
                "server_cpu_ms_per_request": round(self.server_cpu / per * 1e3, 3),
                "server_cpu_cores": round(self.server_cpu / self.seconds, 2)
                if self.seconds else None,
                "client_cpu_ms_per_request": round(self.client_cpu / per * 1e3, 3)
                if self.client_cpu else None,
                "client_cpu_cores": round(self.client_cpu / self.seconds, 2)
                if self.client_cpu and self.seconds else None}


def start_server(artifact: Path, v: Variant) -> tuple[Any, str]:
    cmd = [sys.executable, "-m", "paddleopt", "serve", str(artifact), "--port", "0",
           "--max-batch-size", str(v.max_batch), "--workers", str(v.workers),
           "--threads", str(v.threads), "--max-wait-ms", str(v.max_wait_ms),
           "--max-queue", "4096", "--executor", v.executor]
    if v.http == "h11":
        cmd += ["--http", "h11", "--loop", "asyncio"]
    proc, line, _ = start_until(cmd, " on http://", python_env(), timeout=300)
    return proc, line.split(" on ", 1)[1].split()[0]


def measure_http(name: str, artifact: Path, shape: list[int], rounds: int, requests: int,
                 seconds: float, variants: tuple[Variant, ...] = HTTP_VARIANTS,
                 between: Any = None) -> list[dict]:
    """``between()`` runs after each round (the model-alone slice)."""
    import httpx

    from paddleopt.serve.loadgen import run_load

    payloads = bodies(shape)
    servers: dict[Variant, tuple[Any, str]] = {}
    rss: dict[Variant, float | None] = {}
    starters = [threading.Thread(target=lambda v=v: servers.__setitem__(
        v, start_server(artifact, v))) for v in variants]
    for thread in starters:  # in parallel: each imports Paddle (seconds of CPU)
        thread.start()
    for thread in starters:
        thread.join()
    tallies = {v: Tally() for v in variants}
    try:
        missing = [v.name for v in variants if v not in servers]
        if missing:
            raise RuntimeError(f"servers did not start: {missing}")
        for v, (_proc, url) in servers.items():
            body, ctype = payloads[v.body]
            # warm-up: oneDNN primitives for the batch sizes this variant will see
            run_load(url, body, CONCURRENCY, WARMUP, 10, content_type=ctype)
        for _ in range(rounds):
            for v, (proc, url) in servers.items():
                body, ctype = payloads[v.body]
                before = httpx.get(url + "/metrics", timeout=30).json()
                cpu0, client0 = tree_cpu_seconds(proc.pid), time.process_time()
                result = run_load(url, body, CONCURRENCY, requests // rounds, seconds / rounds,
                                  content_type=ctype)
                client, cpu = time.process_time() - client0, tree_cpu_seconds(proc.pid) - cpu0
                after = httpx.get(url + "/metrics", timeout=30).json()
                t = tallies[v]
                t.ok += result.ok
                t.failed += result.failed
                t.seconds += result.seconds
                t.latencies += result.latencies_ms
                t.server_cpu += cpu
                t.client_cpu += client
                t.batches += after["batches"] - before["batches"]
                t.rows += after["batch_rows_total"] - before["batch_rows_total"]
                if result.failed:
                    print(f"{name} {v.name}: {result.failed} failed: {result.errors[:2]}")
            if between is not None:
                between()
        rss = {v: tree_peak_rss_mb(proc.pid) for v, (proc, _) in servers.items()}
    finally:
        for proc, _ in servers.values():
            stop_process(proc)
    return [tallies[v].row(base_row(name, artifact, v, rss.get(v))) for v in variants]


def base_row(name: str, artifact: Path, v: Variant, rss: float | None,
             backend: str = "server") -> dict[str, Any]:
    from paddleopt.artifact import Artifact

    art = Artifact.open(artifact)
    return {"model": name, "variant": v.name, "backend": backend,
            "precision": art.manifest.precision, "batch_size": v.max_batch,
            "threads": v.threads, "onednn": True, "accuracy": None,
            "size_bytes": art.size_bytes(), "peak_rss_mb": rss, "concurrency": CONCURRENCY,
            "workers": v.workers, "http": v.http if backend == "server" else None,
            "executor": v.executor, "body": v.body, "max_wait_ms": v.max_wait_ms}


def measure_no_http(name: str, artifact: Path, shape: list[int], rounds: int, requests: int,
                    seconds: float) -> list[dict]:
    """The same service (cache, pool, batcher, executor processes) driven by 32 threads
    directly, without HTTP: what batching gains when the HTTP layer is out of the way."""
    from paddleopt.serve.server import ServeConfig, Service

    x = sample(shape)
    services = {v: Service(ServeConfig(port=0, max_batch_size=v.max_batch, workers=WORKERS,
                                       max_wait_ms=v.max_wait_ms, max_queue=4096,
                                       executor=v.executor, options={"threads": 1}), artifact)
                for v in NO_HTTP_VARIANTS}
    tallies = {v: Tally() for v in NO_HTTP_VARIANTS}

    def drive(service: Service, count: int, limit: float, tally: Tally | None) -> None:
        lock = threading.Lock()
        counter = iter(range(count))
        deadline = time.perf_counter() + limit
        latencies: list[float] = []

        def client() -> None:
            for _ in counter:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                with service.manager.use() as version:
                    service.batcher.submit(version, [x]).result(120)
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1e3)

        snap0 = service.metrics.snapshot()
        cpu0 = tree_cpu_seconds(os.getpid())
        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if tally is not None:
            snap = service.metrics.snapshot()
            tally.seconds += time.perf_counter() - started
            tally.ok += len(latencies)
            tally.latencies += latencies
            tally.server_cpu += tree_cpu_seconds(os.getpid()) - cpu0
            tally.batches += snap["batches"] - snap0["batches"]
            tally.rows += snap["batch_rows_total"] - snap0["batch_rows_total"]

    try:
        for service in services.values():
            drive(service, WARMUP, 10, None)  # warm-up
        for _ in range(rounds):
            for v, service in services.items():
                drive(service, requests // rounds, seconds / rounds, tallies[v])
    finally:
        for service in services.values():
            service.close()
    return [tallies[v].row(base_row(name, artifact, v, None)) for v in NO_HTTP_VARIANTS]


class ModelAlone:
    """One predictor (1 thread) run directly at batch 1 and 32: the model's own batch gain,
    and the denominator of the serving efficiency. Measured in slices between the HTTP
    rounds (``round``), so that the shared machine's load hits it like the servers."""

    def __init__(self, name: str, artifact: Path, shape: list[int], seconds: float) -> None:
        import numpy as np

        from paddleopt.artifact import Artifact
        from paddleopt.deploy.predictor import load_predictor

        self.name, self.artifact, self.seconds = name, artifact, seconds
        self.predictor = load_predictor(Artifact.open(artifact), "paddle_inference",
                                        {"threads": 1})
        self.feeds = {1: [np.repeat(sample(shape), 1, 0)], 32: [np.repeat(sample(shape), 32, 0)]}
        self.times: dict[int, list[float]] = {1: [], 32: []}
        for batch in self.feeds:
            for _ in range(3):
                self.predictor.run(self.feeds[batch])

    def round(self) -> None:
        for batch, feed in self.feeds.items():
            end = time.perf_counter() + self.seconds / 2
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                self.predictor.run(feed)
                self.times[batch].append(time.perf_counter() - t0)

    def rows(self) -> list[dict]:
        import numpy as np

        rows = []
        for batch, spent in self.times.items():
            ms = np.asarray(spent) * 1e3
            v = Variant(f"model-b{batch}", batch, 0.0, "direct", "-")
            rows.append({**base_row(self.name, self.artifact, v, None,
                                    backend="paddle_inference"),
                         "latency_ms": {k: round(float(np.percentile(ms, q)), 3)
                                        for k, q in (("p50", 50), ("p90", 90), ("p99", 99))},
                         "throughput_per_s": round(batch * len(ms) / (ms.sum() / 1e3), 1),
                         "requests": len(ms), "failed": 0, "concurrency": 1, "workers": 1,
                         "mean_batch_rows": float(batch)})
        return rows


# -- the suite -------------------------------------------------------------------------------
def main() -> None:
    args = parse_args(SUITE, __doc__)
    from paddleopt import api

    work = WORK
    if args.quick:
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import tiny_config

        result = api.run(tiny_config(work / "tiny"), evaluate=False)
        models = [("lenet-digits", result.artifacts["export"].path, [1, 8, 8]),
                  ("mlp-1024x3", build_mlp(work / "mlp", 1024, 8, "digits"), [1, 8, 8])]
        rounds, requests, seconds = 2, 300, 2.0
        global WARMUP
        WARMUP = CONCURRENCY * 2
    else:
        result = api.run(REPO / "configs" / "quickstart.yaml", resume=True, evaluate=False)
        models = [("quickstart-cnn", result.artifacts["export"].path, [1, 28, 28]),
                  ("mlp-4096x3", build_mlp(work / "mlp", 4096, 28, "mnist"), [1, 28, 28]),
                  ("mobilenet_v2-96", build_mobilenet(work / "mv2", 96), [3, 96, 96])]
        rounds, requests, seconds = 3, 9000, 15.0
    variants = HTTP_VARIANTS if args.quick else HTTP_VARIANTS + HTTP_VARIANTS_1X2
    rows = []
    for name, artifact, shape in models:
        print(f"== {name}", flush=True)
        alone = ModelAlone(name, Path(artifact), shape, 8.0 / rounds if not args.quick else 0.5)
        rows += measure_http(name, Path(artifact), shape, rounds, requests, seconds, variants,
                             between=alone.round)
        rows += alone.rows()
        del alone
        rows += measure_no_http(name, Path(artifact), shape, rounds, requests, seconds / 2)
    summary = ratios(rows)
    meta = {"summary": summary, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}
    data = write_results(SUITE, rows, args.out, meta)
    print("\n".join(rows_table(rows, EXTRA)))
    print(json.dumps(summary, indent=2))
    if not args.quick and not args.no_docs:
        render(data)


def render(data: dict) -> None:
    render_section(SUITE, data, lambda d: rows_table(d["rows"], EXTRA) + ["", *summary_lines(d)])


EXTRA = ("executor", "body", "http", "mean_batch_rows", "server_cpu_ms_per_request",
         "client_cpu_ms_per_request", "failed")


def best(got: dict[str, dict], mode: str) -> float:
    """The best answers/s of a mode over HTTP with the current stack (not the h11 rows)."""
    return max(r["throughput_per_s"] for v, r in got.items()
               if v.startswith(mode) and "no-http" not in v and not v.endswith("h11"))


def ratios(rows: list[dict]) -> dict:
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        got = {r["variant"]: r for r in rows if r["model"] == model}

        def ratio(a: str, b: str, key: str = "throughput_per_s", got: dict = got) -> float:
            return round(got[b][key] / max(got[a][key], 1e-9), 2)

        def cpu(v: str, got: dict = got) -> float:
            return got[v]["server_cpu_ms_per_request"] + (got[v]["client_cpu_ms_per_request"]
                                                          or 0.0)

        model_b32 = got["model-b32"]["throughput_per_s"]
        dynamic_best = best(got, "dynamic")
        out[model] = {
            # serving efficiency: answers/s of dynamic batching over HTTP (best setup of this
            # run) over the model's own batch-32 samples/s on one 1-thread predictor
            "efficiency": round(dynamic_best / max(model_b32, 1e-9), 3),
            "efficiency_h11": round(max(got[v]["throughput_per_s"] for v in
                                        ("dynamic-h11", "dynamic-process-h11"))
                                    / max(model_b32, 1e-9), 3),
            "efficiency_variant": next(v for v, r in got.items()
                                       if r["throughput_per_s"] == dynamic_best
                                       and v.startswith("dynamic")),
            "server_cpu_ms_per_answer_h11_vs_fast": {
                "thread": [got["dynamic-h11"]["server_cpu_ms_per_request"],
                           got["dynamic"]["server_cpu_ms_per_request"]],
                "process": [got["dynamic-process-h11"]["server_cpu_ms_per_request"],
                            got["dynamic-process"]["server_cpu_ms_per_request"]]},
            "throughput_ratio": ratio("batch1", "dynamic"),
            "cpu_per_answer_ratio": round(cpu("batch1") / max(cpu("dynamic"), 1e-9), 2),
            "throughput_ratio_json": ratio("batch1-json", "dynamic-json"),
            "throughput_ratio_process": ratio("batch1-process", "dynamic-process"),
            "throughput_ratio_no_http": ratio("batch1-no-http", "dynamic-no-http"),
            "model_batch_gain": ratio("model-b1", "model-b32"),
            **({"throughput_ratio_1x2": ratio("batch1-1x2", "dynamic-1x2")}
               if "dynamic-1x2" in got else {}),
            # each mode in its best HTTP setup of this run (body, executor, workers x threads)
            "best_vs_best": round(best(got, "dynamic") / max(best(got, "batch1"), 1e-9), 2),
            "dynamic_npy_vs_json": ratio("dynamic-json", "dynamic"),
            "dynamic_process_vs_thread": ratio("dynamic", "dynamic-process"),
            "p50_ms_batch1": got["batch1"]["latency_ms"]["p50"],
            "p50_ms_dynamic": got["dynamic"]["latency_ms"]["p50"],
            "p99_ms_batch1": got["batch1"]["latency_ms"]["p99"],
            "p99_ms_dynamic": got["dynamic"]["latency_ms"]["p99"],
            "model_ms_per_sample_b1": round(1e3 / got["model-b1"]["throughput_per_s"], 3),
            "model_ms_per_sample_b32": round(1e3 / got["model-b32"]["throughput_per_s"], 3),
            "server_cpu_ms_per_answer": {v: got[v]["server_cpu_ms_per_request"]
                                         for v in ("batch1", "dynamic")},
            "client_cpu_ms_per_answer": {v: got[v]["client_cpu_ms_per_request"]
                                         for v in ("batch1", "dynamic")},
        }
    return out


def summary_lines(data: dict) -> list[str]:
    lines = [f"- 1-minute load average at the end: {data.get('loadavg_1m_at_end')} on "
             f"{data['machine'].get('cores')} cores shared with other work: answers/s follow "
             f"the CPU share each variant got; CPU per answer does not.",
             "- batch1/dynamic: .npy bodies, thread executor; *-json: JSON bodies; *-process: "
             "`--executor process`; *-no-http: 32 threads calling the batcher; model-b1/b32: "
             "one predictor run directly (1 thread); *-1x2: 1 worker with 2 threads instead of "
             "2 workers with 1 thread each. 32 keep-alive connections throughout."]
    for m, v in data["summary"].items():
        cpu = v["server_cpu_ms_per_answer_h11_vs_fast"]
        lines.append(
            f"- {m}: serving efficiency (dynamic batching over HTTP, best setup "
            f"`{v['efficiency_variant']}`, over the model's own batch-32 throughput): "
            f"**{v['efficiency']:.0%}** (with the h11 + asyncio stack: "
            f"{v['efficiency_h11']:.0%}); server CPU per answer h11 -> httptools + uvloop: "
            f"{cpu['thread'][0]} -> {cpu['thread'][1]} ms (thread executor), "
            f"{cpu['process'][0]} -> {cpu['process'][1]} ms (process executor).")
        lines.append(
            f"- {m}: over HTTP, dynamic batching serves **{v['throughput_ratio']}x** the "
            f"answers/s of batch-1 serving at concurrency {CONCURRENCY} (p50 "
            f"{v['p50_ms_dynamic']} vs {v['p50_ms_batch1']} ms, p99 {v['p99_ms_dynamic']} vs "
            f"{v['p99_ms_batch1']} ms) and costs **{v['cpu_per_answer_ratio']}x** less CPU per "
            f"answer; with JSON bodies {v['throughput_ratio_json']}x; with the process "
            f"executor {v['throughput_ratio_process']}x; "
            + (f"with 1 worker x 2 threads {v['throughput_ratio_1x2']}x; "
               if "throughput_ratio_1x2" in v else "")
            + f"each mode in its best setup: {v['best_vs_best']}x; without HTTP: "
            f"{v['throughput_ratio_no_http']}x; the model alone: "
            f"{v['model_batch_gain']}x ({v['model_ms_per_sample_b1']} -> "
            f"{v['model_ms_per_sample_b32']} ms per sample).")
    return lines


if __name__ == "__main__":
    import shutil

    WORK.mkdir(parents=True, exist_ok=True)
    try:
        main()
    finally:  # the temporary models and artifacts are not results
        shutil.rmtree(WORK, ignore_errors=True)
