"""Text suite: end-to-end Chinese sentiment classification, raw text -> label.

Rows: the ERNIE student of configs/text_sentiment.yaml in fp32 and int8 (PTQ) on Paddle
Inference with oneDNN, batch 1 and 32. Each timed call takes raw test-set sentences through
the artifact's recorded preprocessing (LAC when the artifact uses it, then ErnieTokenizer,
no token cache) and the model, so ``latency_ms`` and ``throughput_per_s`` (sentences/s) are
end to end and ``preprocess_share`` says how much of it is LAC + tokenization. ``accuracy`` is
end to end too: every test sentence from raw text to argmax.

Also measured: tokenizing the training sentences with 1 vs 2 worker processes (the parallel
preprocessing of ``paddleopt.text.ernie``), without and with LAC, and the test accuracy of
the teacher / student / int8 student recorded in the pipelines' manifests.

    python benchmarks/text.py            # reuses or runs configs/text_sentiment.yaml (+ teacher)
    python benchmarks/text.py --quick    # a tiny model on a few hundred sentences (tests)
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, parse_args, render_section, write_results

SUITE = "text"
THREADS = 1  # per predictor; preprocessing is one thread too, so the shares compare per core


# -- artifacts ------------------------------------------------------------------------------
def _quantize_inline(export: Any, out_dir: Path) -> Any:
    """PTQ through paddleopt.compress.ptq when the pipeline has no ptq stage (yet)."""
    from paddleopt.artifact import Artifact
    from paddleopt.compress.ptq import quantize_post_static
    from paddleopt.data.loaders import data_from_manifest

    bundle = data_from_manifest(export.manifest.dataset, export.manifest.preprocess)
    bundle.cfg.train_subset = None
    ids, tt = bundle.calibration_feeds(128)
    batches = [(ids[i:i + 16], tt[i:i + 16]) for i in range(0, len(ids), 16)]
    report = quantize_post_static(export.path, out_dir, batches, algo="hist")
    manifest = export.manifest.derive(kind="inference", precision="int8",
                                      files={"model": "model.pdmodel",
                                             "params": "model.pdiparams"},
                                      quantization={"method": "ptq", "algo": report.algo,
                                                    "inline": True, **report.quant})
    manifest.save(out_dir)
    return Artifact.open(out_dir)


def pipeline_artifacts(config: dict | Path, work: Path) -> dict[str, Any]:
    """Run (or reuse) a pipeline; stages missing from the catalogue (ptq, to_onnx while they
    are being written) are dropped, and a missing ptq is replaced by an inline PTQ."""
    from paddleopt import api
    from paddleopt.config.loader import load_config
    from paddleopt.stages.catalog import CATALOG

    raw = dict(config) if isinstance(config, dict) else load_config(config)
    stages = dict(raw["stages"])
    missing = [s for s, c in stages.items() if (c or {}).get("type", s) not in CATALOG]
    for stage_id in missing:
        stages.pop(stage_id)
    raw["stages"] = stages
    result = api.run(raw, resume=True, evaluate=False)
    arts = dict(result.artifacts)
    if "ptq" not in arts:
        out = Path(raw.get("work_dir") or work) / "bench_ptq_inline"
        arts["ptq"] = _quantize_inline(arts["export"], out)
    return arts


# -- end to end -----------------------------------------------------------------------------
def end_to_end(artifact: Any, texts: list[str], labels: np.ndarray, batch: int,
               max_seconds: float, accuracy: float | None) -> dict[str, Any]:
    from paddleopt.deploy.bench import RssSampler
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.text.ernie import ErnieTextEncoder
    from paddleopt.text.preprocess import artifact_encoder

    base = artifact_encoder(artifact)
    encoder = ErnieTextEncoder(base.spec, base.vocab_path, cache=False)  # tokenize every call
    predictor = load_predictor(artifact, "paddle_inference", {"threads": THREADS})
    lac_seconds = 0.0
    if encoder.spec.use_lac:
        encoder.lac.run(texts[:8])  # build LAC's predictor before timing
    encoder.encode(texts[:batch])
    predictor.run(list(encoder.pad(encoder.encode(texts[:batch]))))  # warm up both
    sampler = RssSampler()
    sampler.start()
    pre, model, total = [], [], []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < max_seconds or len(total) < 3:
        chunk = [texts[(i + k) % len(texts)] for k in range(batch)]
        i += batch
        t0 = time.perf_counter()
        feeds = list(encoder.pad(encoder.encode(chunk)))
        t1 = time.perf_counter()
        predictor.run(feeds)
        t2 = time.perf_counter()
        pre.append(t1 - t0)
        model.append(t2 - t1)
        total.append(t2 - t0)
        if encoder.spec.use_lac:  # LAC alone on the same batch, outside the timed call
            t3 = time.perf_counter()
            encoder.lac.run(chunk)
            lac_seconds += time.perf_counter() - t3
    peak = sampler.stop()
    ms = np.asarray(total) * 1e3
    return {
        "latency_ms": {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
                       "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())},
        "throughput_per_s": batch * len(total) / float(np.sum(total)),
        "preprocess_ms_p50": float(np.percentile(np.asarray(pre) * 1e3, 50)),
        "model_ms_p50": float(np.percentile(np.asarray(model) * 1e3, 50)),
        "preprocess_share": float(np.sum(pre) / np.sum(total)),
        "lac_share": float(lac_seconds / np.sum(total)) if encoder.spec.use_lac else None,
        "calls": len(total),
        "peak_rss_mb": round(peak, 1),
        "accuracy": accuracy,
        "onednn": predictor.describe().get("onednn"),
        "threads": predictor.describe().get("threads"),
    }


def e2e_accuracy(artifact: Any, texts: list[str], labels: np.ndarray) -> float:
    """Test accuracy from raw text through the artifact's own preprocessing."""
    from paddleopt.deploy.accuracy import predict_batched
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.text.preprocess import artifact_encoder

    encoder = artifact_encoder(artifact)
    predictor = load_predictor(artifact, "paddle_inference", {"threads": THREADS})
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: less padding
    preds = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), 64):
        idx = order[start:start + 64]
        feeds = list(encoder.pad(encoder.encode([texts[i] for i in idx])))
        preds[idx] = predict_batched(predictor, feeds, 64).argmax(axis=-1)
    return float((preds == labels).mean())


def parallel_preprocessing(spec: Any, texts: list[str]) -> list[dict[str, Any]]:
    """Tokenize ``texts`` without a cache in 1 and 2 processes (tokenizer only, and LAC +
    tokenizer); wall time includes starting the workers (and their LAC predictors)."""
    import dataclasses

    from paddleopt.text.ernie import ErnieTextEncoder

    out = []
    for use_lac in (False, True):
        settings = dataclasses.replace(spec, use_lac=use_lac, cache_dir=None)
        encoder = ErnieTextEncoder(settings, cache=False)
        encoder.encode(texts[:4])  # load the tokenizer (and LAC) once, outside the timing
        times = {}
        results = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            results[workers] = encoder.encode(texts, workers=workers)
            times[workers] = time.perf_counter() - t0
        same = all((a == b).all() for a, b in zip(results[1], results[2]))
        out.append({"preprocess": "lac+tokenize" if use_lac else "tokenize",
                    "texts": len(texts), "seconds_1_worker": round(times[1], 3),
                    "seconds_2_workers": round(times[2], 3),
                    "texts_per_s_1_worker": round(len(texts) / times[1], 1),
                    "texts_per_s_2_workers": round(len(texts) / times[2], 1),
                    "speedup": round(times[1] / times[2], 2), "identical": same})
    return out


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    args = parse_args(SUITE, __doc__)
    from paddleopt.data.loaders import data_from_manifest

    if args.quick:
        import sys

        sys.path.insert(0, str(REPO / "tests"))
        from text.conftest import tiny_text_config

        work = Path(tempfile.mkdtemp(prefix="bench_text_"))
        arts = pipeline_artifacts(tiny_text_config(work), work)
        teacher = None
        batches, seconds, n_eval, n_parallel = [1, 8], 0.5, 64, 200
    else:
        arts = pipeline_artifacts(REPO / "configs" / "text_sentiment.yaml",
                                  REPO / "work_dirs" / "text_sentiment")
        teacher = _teacher_artifact()
        batches, seconds, n_eval, n_parallel = [1, 32], 8.0, None, 4000
    fp32, int8 = arts["export"], arts["ptq"]
    bundle = data_from_manifest(fp32.manifest.dataset, fp32.manifest.preprocess, n_eval)
    texts, labels = bundle.eval_texts()
    model_name = _model_name(fp32.manifest.model)
    rows = []
    accuracies: dict[str, float | None] = {
        "teacher_fp32": None if teacher is None else e2e_accuracy(teacher, texts, labels)}
    for variant, art in (("fp32", fp32), (f"int8-ptq-{_algo(int8)}", int8)):
        accuracy = e2e_accuracy(art, texts, labels)
        accuracies[f"student_{art.manifest.precision}"] = accuracy
        for batch in batches:
            measured = end_to_end(art, texts, labels, batch, seconds, accuracy)
            rows.append({"model": model_name, "variant": variant, "backend": "paddle_inference",
                         "precision": art.manifest.precision, "batch_size": batch,
                         "size_bytes": art.size_bytes(), "e2e": "raw text -> label",
                         "use_lac": bool(art.manifest.preprocess.get("use_lac")),
                         **measured})
    bundle.cfg.train_subset = None
    parallel = parallel_preprocessing(bundle.spec, bundle.splits.train.texts[:n_parallel])
    extra = {"parallel_preprocessing": parallel,
             "accuracy_test": accuracies,
             "int8_vs_fp32": _int8_summary(rows)}
    data = write_results(SUITE, rows, args.out, extra)
    print("\n".join(_table(rows)))
    print("\n".join(_parallel_lines(parallel)))
    print(extra["accuracy_test"], extra["int8_vs_fp32"])
    if not args.quick and not args.no_docs:
        render_section(SUITE, data, _doc_body)


def _teacher_artifact() -> Any | None:
    from paddleopt.stages.pipeline import stage_artifacts

    work = REPO / "work_dirs" / "text_ernie_teacher"
    if not work.is_dir():
        return None
    found = [a for a in stage_artifacts(work) if a.kind == "inference"]
    return found[-1] if found else None


def _model_name(spec: dict) -> str:
    kw = spec.get("kwargs", {})
    return f"ernie_cls-h{kw.get('hidden_size', 128)}-l{kw.get('num_hidden_layers', 2)}"


def _algo(art: Any) -> str:
    return str(art.manifest.quantization.get("algo", "hist"))


def _int8_summary(rows: list[dict]) -> dict[str, Any]:
    out = {}
    for batch in sorted({r["batch_size"] for r in rows}):
        fp, q = [next(r for r in rows if r["batch_size"] == batch and
                      r["precision"] == p) for p in ("fp32", "int8")]
        out[f"batch{batch}"] = {
            "e2e_speedup": round(q["throughput_per_s"] / fp["throughput_per_s"], 2),
            "model_speedup_p50": round(fp["model_ms_p50"] / q["model_ms_p50"], 2),
            "accuracy_drop": None if fp["accuracy"] is None else
            round(fp["accuracy"] - q["accuracy"], 4)}
    return out


def _table(rows: list[dict]) -> list[str]:
    head = ["model", "variant", "batch", "LAC", "p50 ms", "p99 ms", "sentences/s",
            "preprocess p50 ms", "model p50 ms", "preprocess share", "LAC share", "accuracy",
            "size KB", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lac = "-" if r["lac_share"] is None else f"{r['lac_share']:.0%}"
        lines.append("| " + " | ".join([
            r["model"], r["variant"], str(r["batch_size"]), "on" if r["use_lac"] else "off",
            f"{r['latency_ms']['p50']:.2f}", f"{r['latency_ms']['p99']:.2f}",
            f"{r['throughput_per_s']:.1f}", f"{r['preprocess_ms_p50']:.2f}",
            f"{r['model_ms_p50']:.2f}", f"{r['preprocess_share']:.0%}", lac,
            f"{r['accuracy']:.4f}", f"{r['size_bytes'] / 1024:.0f}",
            f"{r['peak_rss_mb']:.0f}"]) + " |")
    return lines


def _parallel_lines(parallel: list[dict]) -> list[str]:
    lines = [("| preprocessing | texts | 1 worker texts/s | 2 workers texts/s | speedup | "
              "identical |"), "|---|---|---|---|---|---|"]
    for p in parallel:
        lines.append(f"| {p['preprocess']} | {p['texts']} | {p['texts_per_s_1_worker']} | "
                     f"{p['texts_per_s_2_workers']} | {p['speedup']}x | {p['identical']} |")
    return lines


def _doc_body(data: dict) -> list[str]:
    acc = data["accuracy_test"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    lines = [(f"End to end = raw sentence -> label on Paddle Inference (oneDNN, {THREADS} "
              "thread per predictor; preprocessing runs in the same thread, no token cache). "
              "Accuracy: all 1,736 test sentences of chn_sentiment, also end to end."), "",
             *_table(data["rows"]), "",
             (f"Test accuracy, end to end: teacher {fmt(acc['teacher_fp32'])}, student "
              f"{fmt(acc['student_fp32'])}, int8 student {fmt(acc['student_int8'])}."), ""]
    for batch, s in data["int8_vs_fp32"].items():
        lines.append(f"- {batch}: int8 vs fp32 end to end **{s['e2e_speedup']}x** sentences/s "
                     f"(model alone {s['model_speedup_p50']}x at p50), accuracy drop "
                     f"{s['accuracy_drop']:+.4f}.")
    lines += ["", ("Parallel preprocessing (training sentences, no cache; the 2-worker time "
                   "includes forking the workers and, with LAC, building a LAC predictor in "
                   "each):"), "", *_parallel_lines(data["parallel_preprocessing"])]
    return lines


if __name__ == "__main__":
    main()
