"""Compression suite: PTQ / QAT INT8 vs fp32, structured pruning, distillation, on MNIST.

One pipeline (work_dirs/bench_compression) trains a ResNet-style CNN once and branches from it:
export (fp32), ptq (accuracy-aware search over the algorithms), qat, prune to half the FLOPs
+ fine-tune + export. A second pipeline per seed (work_dirs/bench_compression_students_*/seed_N)
trains the same small student with the same recipe, seed and 1,000 labelled images, with that
teacher (distill) and without it (alpha 0). Then every variant is measured side by side in
this process: accuracy on the whole MNIST test split, latency/throughput at batch 1 and 32
with Paddle Inference + oneDNN (INT8 kernels for the quantized models), timed in alternating
rounds so that load on a shared machine hits every variant alike.

    python benchmarks/compression.py            # MNIST, tens of minutes (resumes finished stages)
    python benchmarks/compression.py --quick    # tiny digits pipeline, for tests
    python benchmarks/compression.py --no-training-code [--quick]   # see benchmarks/_notraining.py
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import REPO, parse_args, render_section, rows_table, write_results

SUITE = "compression"
TEACHER = {"depths": [1, 1, 1], "widths": [48, 96, 192]}
# ~35x fewer parameters than the teacher (20k vs 693k), same family
STUDENT = {"arch": "resnet_small", "num_classes": 10, "in_channels": 1,
           "kwargs": {"depths": [1, 1, 1], "widths": [8, 16, 32]}}
# The students learn from 1,000 labelled images (the teacher saw 20,000) for 16 epochs (128
# updates). Other regimes measured with this code are in docs/COMPRESSION.md (2,000 x 8: a
# smaller gain; one short pass over 20,000: the teacher hurts).
STUDENT_LABELS = 1000
STUDENT_EPOCHS = 16
STUDENT_SEEDS = (0, 1, 2)  # KD vs plain is repeated per seed: a mean, not one lucky draw
PLOT = REPO / "docs" / "images" / "compression_ptq_candidates.png"

# The targets of the issue (and the goal where one is given).
TARGETS = {
    "ptq_throughput_ratio_b32": 2.5,
    "ptq_throughput_goal_b32": 3.0,
    "ptq_accuracy_drop_max": 0.005,
    "prune_latency_ratio_min": 1.6,
    "prune_accuracy_drop_max": 0.01,
}


def full_config(work_dir: Path) -> dict[str, Any]:
    ft = {"progress_bar": False, "log_interval": 50}
    return {
        "name": "bench_compression", "work_dir": str(work_dir), "seed": 42,
        "model": {"arch": "resnet_small", "num_classes": 10, "in_channels": 1,
                  "kwargs": TEACHER},
        # 20k of the 50k training images keep the run within the hour on 2 shared cores;
        # the test split (10k) is scored in full.
        "data": {"dataset": "mnist", "train_subset": 20000, "batch_size": 128,
                 "eval_batch_size": 500},
        "stages": {
            "train": {"epochs": 2, **ft,
                      "optimizer": {"name": "momentum", "lr": 0.1, "weight_decay": 5e-4},
                      "schedule": {"name": "cosine", "warmup_epochs": 0.2}},
            "export": {},
            "ptq": {"algo": "hist", "max_accuracy_drop": 0.005, "search": "all",
                    "calibration": {"count": 512, "batch_size": 32},
                    "evaluation": {"count": 5000},
                    "candidates": [{"algo": "hist"}, {"algo": "kl"}, {"algo": "mse"},
                                   {"algo": "avg"}, {"algo": "abs_max"},
                                   {"algo": "abs_max", "skip_sensitive": 1}],
                    "latency": {"batch_size": 32, "threads": 2, "rounds": 2}},
            "qat": {"input": "train",
                    "finetune": {"epochs": 1, **ft, "max_steps_per_epoch": 80,
                                 "optimizer": {"name": "momentum", "lr": 0.005},
                                 "schedule": {"name": "cosine"}}},
            "prune": {"input": "train", "criterion": "fpgm", "flops_reduction": 0.5,
                      "spread": "sensitivity", "sensitivity_samples": 500, "align": 8,
                      "finetune": {"epochs": 2, **ft,
                                   "optimizer": {"name": "momentum", "lr": 0.02,
                                                 "weight_decay": 5e-4},
                                   "schedule": {"name": "cosine"}}},
            "export_pruned": {"type": "export"},
        },
        "evaluate": {"targets": []},
    }


def students_config(work_dir: Path, teacher: Path, quick: bool, seed: int) -> dict[str, Any]:
    """The same student trained with the teacher (distill) and without it (alpha 0): same
    recipe, seed and data: ``STUDENT_LABELS`` labelled images for ``STUDENT_EPOCHS`` epochs
    (the teacher saw 20,000); see docs/COMPRESSION.md for the one-pass regime, where the
    teacher did not help."""
    if quick:
        cfg = quick_config(work_dir)
        cfg["name"] = "bench_compression_quick_students"
        cfg["seed"] = seed
        ft = {"epochs": 1, "progress_bar": False, "max_steps_per_epoch": 10}
        student = {"arch": "lenet", "width_mult": 0.5}
    else:
        cfg = full_config(work_dir)
        cfg["name"] = "bench_compression_students"
        cfg["seed"] = seed
        ft = {"epochs": STUDENT_EPOCHS, "progress_bar": False,
              "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "cosine"}}
        student = STUDENT
    common = {"type": "distill", "student": student, "finetune": ft,
              "train_subset": 300 if quick else STUDENT_LABELS}
    cfg["stages"] = {
        "student_kd": {**common, "teacher": {"artifact": str(teacher)}, "temperature": 4.0,
                       "alpha": 0.9},
        "student_plain": {**common, "alpha": 0.0},
    }
    return cfg


def students_dir(work: Path) -> Path:
    """One folder per student regime, so that changing it never overwrites measured runs."""
    return work / f"bench_compression_students_{STUDENT_LABELS}x{STUDENT_EPOCHS}"


def quick_config(work_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import tiny_config

    cfg = tiny_config(work_dir, name="bench_compression_quick")
    ft = {"epochs": 1, "progress_bar": False, "max_steps_per_epoch": 10}
    cfg["stages"] = {
        "train": {"epochs": 2, "optimizer": {"name": "adam", "lr": 0.01}, "progress_bar": False},
        "export": {},
        "ptq": {"algo": "abs_max", "max_accuracy_drop": 0.5, "search": "all",
                "calibration": {"count": 64}, "evaluation": {"count": 100},
                "candidates": [{"algo": "abs_max"}, {"algo": "avg"}],
                "latency": {"batch_size": 8, "iters": 10, "max_seconds": 0.3, "rounds": 1}},
        "qat": {"input": "train", "finetune": ft, "verify_int8": False},
        "prune": {"input": "train", "flops_reduction": 0.4, "spread": "uniform",
                  "finetune": ft},
        "export_pruned": {"type": "export"},
    }
    cfg["evaluate"]["targets"] = []
    return cfg


def variants(arts: dict[str, Any], students: dict[int, dict[str, Any]]
             ) -> list[tuple[str, str, Any, int | None]]:
    """(variant, backend, artifact, student seed) measured side by side."""
    algo = arts["ptq"].manifest.quantization.get("algo", "?")
    out = [("fp32", "paddle_inference", arts["export"], None),
           (f"int8-ptq-{algo}", "paddle_inference", arts["ptq"], None),
           ("int8-qat", "paddle_inference", arts["qat"], None),
           ("pruned-50", "paddle_inference", arts["export_pruned"], None)]
    for seed, run in students.items():
        out += [("student-kd", "eager", run["student_kd"], seed),
                ("student-plain", "eager", run["student_plain"], seed)]
    return out


def measure(arts: dict[str, Any], students: dict[int, dict[str, Any]],
            quick: bool) -> list[dict[str, Any]]:
    import numpy as np

    from paddleopt.deploy.accuracy import accuracy, eval_data
    from paddleopt.deploy.bench import measure_latency
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.utils.native_output import fd_silenced

    threads = 1 if quick else 2
    batches = [1, 8] if quick else [1, 32]
    rounds = 1 if quick else 3
    timing = dict(warmup=2, iters=10, max_seconds=0.5) if quick else \
        dict(warmup=10, iters=150, max_seconds=4.0)
    data = eval_data(arts["export"], 300 if quick else None)
    assert data is not None
    x, y = data
    preds, acc = {}, {}
    for name, backend, art, seed in variants(arts, students):
        with fd_silenced(2):  # oneDNN INT8 pass summaries
            options = {"threads": threads} if backend == "paddle_inference" else {}
            preds[name, seed] = load_predictor(art, backend, options)
        acc[name, seed] = accuracy(preds[name, seed], x, y, 500)
        print(f"{name}{'' if seed is None else f' (seed {seed})'}: accuracy "
              f"{acc[name, seed]:.4f} on {len(y)} test samples", flush=True)
    best: dict[tuple[str, int], dict] = {}
    for _ in range(rounds):  # alternate: every variant sees the same machine load
        for name, backend, _art, seed in variants(arts, students):
            if backend == "eager":
                continue  # the students are compared by accuracy; their speed is not a claim
            for batch in batches:
                feeds = [np.concatenate([f] * (batch // len(f) + 1))[:batch] for f in x]
                t = measure_latency(preds[name, seed], feeds, **timing)
                key = (name, batch)
                if key not in best or t["latency_ms"]["p50"] < best[key]["latency_ms"]["p50"]:
                    best[key] = t
    rows = []
    for name, backend, art, seed in variants(arts, students):
        m = art.manifest
        for batch in batches if backend != "eager" else [batches[-1]]:
            t = best.get((name, batch))
            if t is None:  # eager students: one quick timing for the row contract
                feeds = [np.concatenate([f] * (batch // len(f) + 1))[:batch] for f in x]
                t = measure_latency(preds[name, seed], feeds, warmup=2, iters=20,
                                    max_seconds=1.0)
            rows.append({
                "model": m.model.get("arch", "resnet_small"), "variant": name,
                **({"seed": seed} if seed is not None else {}),
                "backend": backend, "precision": m.precision, "batch_size": batch,
                "threads": threads if backend == "paddle_inference" else None,
                "onednn": True if backend == "paddle_inference" else None,
                "latency_ms": {k: round(t["latency_ms"][k], 4) for k in ("p50", "p90", "p99")},
                "throughput_per_s": round(t["throughput_per_s"], 2), "accuracy": acc[name, seed],
                "size_bytes": art.size_bytes(), "peak_rss_mb": t["peak_rss_mb"],
                "flops": m.metrics.get("flops"), "params": m.metrics.get("params"),
                "stage": art.path.name, "eval_samples": int(len(y))})
    return rows


def summarize(rows: list[dict], arts: dict[str, Any], student: dict[str, Any]
              ) -> dict[str, Any]:
    def row(variant_prefix: str, batch: int) -> dict:
        return next(r for r in rows if r["variant"].startswith(variant_prefix)
                    and r["batch_size"] == batch)

    batches = sorted({r["batch_size"] for r in rows if r["backend"] == "paddle_inference"})
    small, big = batches[0], batches[-1]
    fp32_b, ptq_b, qat_b = row("fp32", big), row("int8-ptq", big), row("int8-qat", big)
    fp32_s, ptq_s = row("fp32", small), row("int8-ptq", small)
    pr_b, pr_s = row("pruned", big), row("pruned", small)
    prune_m = arts["prune"].manifest.metrics
    distill = distill_summary(rows, fp32_b["accuracy"], student)
    s = {
        "ptq": {"variant": ptq_b["variant"],
                f"throughput_ratio_b{big}": round(ptq_b["throughput_per_s"] /
                                                  fp32_b["throughput_per_s"], 2),
                f"latency_ratio_b{small}": round(fp32_s["latency_ms"]["p50"] /
                                                 ptq_s["latency_ms"]["p50"], 2),
                "fp32_accuracy": fp32_b["accuracy"], "int8_accuracy": ptq_b["accuracy"],
                "accuracy_drop": round(fp32_b["accuracy"] - ptq_b["accuracy"], 5),
                "chosen": arts["ptq"].manifest.metrics.get("chosen")},
        "qat": {"accuracy": qat_b["accuracy"], "ptq_accuracy": ptq_b["accuracy"],
                f"throughput_ratio_b{big}": round(qat_b["throughput_per_s"] /
                                                  fp32_b["throughput_per_s"], 2),
                "qat_ge_ptq": qat_b["accuracy"] >= ptq_b["accuracy"]},
        "prune": {"flops_before": prune_m.get("flops_before"),
                  "flops_after": prune_m.get("flops_after"),
                  "flops_reduction": prune_m.get("flops_reduction"),
                  "params_before": prune_m.get("params_before"),
                  "params_after": prune_m.get("params_after"),
                  f"latency_ratio_b{big}": round(fp32_b["latency_ms"]["p50"] /
                                                 pr_b["latency_ms"]["p50"], 2),
                  f"latency_ratio_b{small}": round(fp32_s["latency_ms"]["p50"] /
                                                   pr_s["latency_ms"]["p50"], 2),
                  "fp32_accuracy": fp32_b["accuracy"], "pruned_accuracy": pr_b["accuracy"],
                  "accuracy_drop": round(fp32_b["accuracy"] - pr_b["accuracy"], 5),
                  "mode": (prune_m.get("prune") or {}).get("mode")},
        "distill": distill,
        "batch_sizes": [small, big],
    }
    s["checks"] = {
        f"ptq throughput x{TARGETS['ptq_throughput_ratio_b32']} at batch {big}":
            s["ptq"][f"throughput_ratio_b{big}"] >= TARGETS["ptq_throughput_ratio_b32"],
        f"ptq faster at batch {small}": s["ptq"][f"latency_ratio_b{small}"] > 1.0,
        "ptq accuracy drop <= 0.5 points":
            s["ptq"]["accuracy_drop"] <= TARGETS["ptq_accuracy_drop_max"],
        f"pruned latency x{TARGETS['prune_latency_ratio_min']} at batch {big}":
            s["prune"][f"latency_ratio_b{big}"] >= TARGETS["prune_latency_ratio_min"],
        "pruned accuracy drop <= 1 point":
            s["prune"]["accuracy_drop"] <= TARGETS["prune_accuracy_drop_max"],
        f"distilled student beats plain student (mean of {len(distill['seeds'])} seeds)":
            distill["kd_beats_plain"],
        "qat accuracy >= ptq accuracy": s["qat"]["qat_ge_ptq"],
    }
    return s


def distill_summary(rows: list[dict], teacher_accuracy: float, student: dict[str, Any]
                    ) -> dict[str, Any]:
    """KD vs plain per seed, and their means and spreads: the claim is on the means.
    ``student``: what the students are (model spec, labelled images), copied in."""
    import statistics

    acc = {(r["variant"], r.get("seed")): r["accuracy"] for r in rows
           if r["variant"] in ("student-kd", "student-plain")}
    seeds = sorted({seed for _, seed in acc})
    kd = [acc["student-kd", s] for s in seeds]
    plain = [acc["student-plain", s] for s in seeds]
    gains = [k - p for k, p in zip(kd, plain)]
    spread = (lambda v: round(statistics.stdev(v), 5) if len(v) > 1 else 0.0)  # noqa: E731
    return {**student, "seeds": seeds,
            "per_seed": [{"seed": s, "kd_accuracy": k, "plain_accuracy": p,
                          "gain": round(g, 5)} for s, k, p, g in zip(seeds, kd, plain, gains)],
            "kd_accuracy": round(statistics.mean(kd), 5),
            "plain_accuracy": round(statistics.mean(plain), 5),
            "kd_std": spread(kd), "plain_std": spread(plain),
            "gain_mean": round(statistics.mean(gains), 5), "gain_std": spread(gains),
            "kd_wins": sum(g > 0 for g in gains),
            "teacher_accuracy": teacher_accuracy,
            "kd_beats_plain": statistics.mean(kd) > statistics.mean(plain)}


def candidate_rows(arts: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("name", "status", "accuracy", "accuracy_drop", "latency_ms", "fp32_latency_ms",
            "speedup_vs_fp32", "reason", "skipped_layers")
    return [{k: c.get(k) for k in keep if k in c}
            for c in arts["ptq"].manifest.metrics.get("candidates", [])]


def body(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    d = s["distill"]
    labelled = f"{d['labelled_images']:,}" if d.get("labelled_images") else "all the"
    small, big = s["batch_sizes"]
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    lines = [
        "Model: resnet_small (BasicBlock stages, widths 48/96/192, depths 1/1/1) trained 2 "
        "epochs on 20k MNIST training images; accuracies on the full 10k test split; Paddle "
        f"Inference with oneDNN, {data['rows'][0]['threads']} threads, best p50 of 3 alternating "
        "rounds. Students: resnet_small at widths 8/16/32 (~35x fewer parameters), trained "
        f"{STUDENT_EPOCHS} epochs on {labelled} labelled images with the same recipe, data and "
        "seed, with the teacher (distill, T=4, alpha=0.9) and without it (alpha 0); repeated "
        f"for seeds {', '.join(map(str, d['seeds']))} (the table lists every seed).", "",
        *rows_table(data["rows"], ("flops", "params", "seed")), "",
        "| claim | measured | target | met |", "|---|---|---|---|",
        f"| PTQ INT8 vs fp32 throughput, batch {big} | "
        f"{s['ptq'][f'throughput_ratio_b{big}']}x ({s['ptq']['variant']}) | >= 2.5x (goal 3x) | "
        f"{_yes(s['checks'], 'ptq throughput')} |",
        f"| PTQ INT8 vs fp32 latency, batch {small} | {s['ptq'][f'latency_ratio_b{small}']}x | "
        f"faster | {_yes(s['checks'], f'ptq faster at batch {small}')} |",
        f"| PTQ accuracy drop | {pct(s['ptq']['accuracy_drop'])} "
        f"({pct(s['ptq']['fp32_accuracy'])} -> {pct(s['ptq']['int8_accuracy'])}) | <= 0.5 "
        f"points | {_yes(s['checks'], 'ptq accuracy drop')} |",
        f"| Pruned (FLOPs -{pct(s['prune']['flops_reduction'] or 0)}) vs dense latency, batch "
        f"{big} | {s['prune'][f'latency_ratio_b{big}']}x (batch {small}: "
        f"{s['prune'][f'latency_ratio_b{small}']}x) | >= 1.6x | "
        f"{_yes(s['checks'], 'pruned latency')} |",
        f"| Pruned accuracy drop after fine-tuning | {pct(s['prune']['accuracy_drop'])} "
        f"({pct(s['prune']['fp32_accuracy'])} -> {pct(s['prune']['pruned_accuracy'])}) | <= 1 "
        f"point | {_yes(s['checks'], 'pruned accuracy')} |",
        f"| Distilled vs plain student, mean of {len(d['seeds'])} seeds (std) | "
        f"{pct(d['kd_accuracy'])} ({pct(d['kd_std'])}) vs {pct(d['plain_accuracy'])} "
        f"({pct(d['plain_std'])}); gain {pct(d['gain_mean'])} +- {pct(d['gain_std'])}, "
        f"distilled higher on {d['kd_wins']}/{len(d['seeds'])} seeds | distilled higher | "
        f"{_yes(s['checks'], 'distilled')} |",
        f"| QAT vs PTQ accuracy | {pct(s['qat']['accuracy'])} vs "
        f"{pct(s['qat']['ptq_accuracy'])} | QAT >= PTQ | {_yes(s['checks'], 'qat accuracy')} |",
        "", f"Pruning: FLOPs {s['prune']['flops_before']:,} -> {s['prune']['flops_after']:,}, "
        f"params {s['prune']['params_before']:,} -> {s['prune']['params_after']:,} "
        f"({s['prune']['mode']}).", "",
        f"Distillation per seed (teacher {pct(d['teacher_accuracy'])}):", "",
        "| seed | distilled | plain | gain |", "|---|---|---|---|",
        *[f"| {r['seed']} | {pct(r['kd_accuracy'])} | {pct(r['plain_accuracy'])} | "
          f"{pct(r['gain'])} |" for r in d["per_seed"]], "",
        "PTQ accuracy-aware search (held-out validation samples; each candidate's latency is "
        "paired with an fp32 timing taken right next to it):", "",
        "| candidate | status | accuracy | drop | p50 ms | speedup | reason |",
        "|---|---|---|---|---|---|---|"]
    for c in data.get("ptq_candidates", []):
        lat = (c.get("latency_ms") or {}).get("p50")
        lines.append(f"| {c['name']} | {c.get('status')} | "
                     f"{'-' if c.get('accuracy') is None else pct(c['accuracy'])} | "
                     f"{'-' if c.get('accuracy_drop') is None else pct(c['accuracy_drop'])} | "
                     f"{'-' if lat is None else f'{lat:.3f}'} | "
                     f"{c.get('speedup_vs_fp32', '-')} | {c.get('reason', '')} |")
    if PLOT.is_file():
        lines += ["", f"![PTQ candidates](images/{PLOT.name})"]
    return lines


def _yes(checks: dict[str, bool], prefix: str) -> str:
    value = next(v for k, v in checks.items() if k.startswith(prefix))
    return "yes" if value else "**no**"


def no_training_code(args: Any) -> None:
    """Compress inference folders only (see _notraining): its own results file and section."""
    import _notraining
    from paddleopt import api

    if args.quick:
        from _models import export_vision

        # the quickstart architecture, random weights: the parts run, the numbers mean little
        work = Path(tempfile.mkdtemp(prefix="bench_notraining_"))
        export = export_vision("quickstart_cnn", cache=work / "models").path
    elif os.environ.get("QUICKSTART_EXPORT"):
        # an export of configs/quickstart.yaml (or quickstart_deploy.yaml: same model and
        # training) made earlier: ~20 min of training saved on a loaded machine
        work = REPO / "work_dirs" / "bench_notraining"
        export = os.environ["QUICKSTART_EXPORT"]
    else:
        work = REPO / "work_dirs" / "bench_notraining"
        export = api.run(REPO / "configs" / "quickstart.yaml", [f"work_dir={work / 'qs'}"],
                         resume=True, evaluate=False).artifacts["export"].path
    # NOTRAINING_REC=0 leaves the recogniser out (~20 min of a loaded 2-core machine)
    rec = not args.quick and os.environ.get("NOTRAINING_REC", "1") != "0"
    section = _notraining.run_section(Path(export), work, args.quick, rec=rec)
    out = args.out.replace(f"{SUITE}.json", f"{SUITE}_notraining.json")
    data = write_results(f"{SUITE}_notraining", [], out, {"no_training_code": section})
    for claim, met in section["checks"].items():
        print(f"{'MET ' if met else 'MISS'} {claim}")
    if not args.quick and not args.no_docs:
        render_section(f"{SUITE}_notraining", data, _notraining.body,
                       "python benchmarks/compression.py --no-training-code")


def main() -> None:
    args = parse_args(SUITE, __doc__, {"--no-training-code": "compress inference folders "
                                       "only: qat_distill vs PTQ, prune + distill, PP-OCRv4 rec"})
    if args.no_training_code:
        no_training_code(args)
        return
    from paddleopt import api

    if args.quick:
        work = Path(tempfile.mkdtemp(prefix="bench_compression_"))
        result = api.run(quick_config(work / "main"), evaluate=False)
    else:
        work = REPO / "work_dirs"
        result = api.run(full_config(work / "bench_compression"), resume=True, evaluate=False)
    arts = dict(result.artifacts)
    teacher = arts["train"].path.resolve()
    students = {}
    for seed in STUDENT_SEEDS[:2] if args.quick else STUDENT_SEEDS:
        cfg = students_config(students_dir(work) / f"seed_{seed}", teacher, args.quick, seed)
        students[seed] = api.run(cfg, resume=not args.quick, evaluate=False).artifacts
    rows = measure(arts, students, args.quick)
    first = next(iter(students.values()))["student_kd"].manifest
    summary = summarize(rows, arts, {
        "student": dict(first.model),
        "labelled_images": first.metrics["distill"].get("train_samples")})
    data = write_results(SUITE, rows, args.out, {"summary": summary,
                                                 "ptq_candidates": candidate_rows(arts)})
    print("\n".join(rows_table(rows, ("flops", "params", "seed"))))
    for claim, met in summary["checks"].items():
        print(f"{'MET ' if met else 'MISS'} {claim}")
    if not args.quick and not args.no_docs:
        plot = arts["ptq"].path / "candidates.png"
        if plot.is_file():
            PLOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(plot, PLOT)
        render_section(SUITE, data, body)


if __name__ == "__main__":
    main()
