"""Run the configured deployments (evaluate.targets) on the pipeline's artifacts."""
from __future__ import annotations

import logging
from typing import Any

from paddleopt.artifact import Artifact
from paddleopt.config.sections import EvaluateConfig, TargetConfig
from paddleopt.deploy.targets import resolve_target

log = logging.getLogger("paddleopt")


def benchmark_rows(artifact: Artifact, backend: str, options: dict[str, Any],
                   cfg: EvaluateConfig, name: str = "", model_name: str = "") -> list[dict]:
    """Accuracy once, then latency/throughput per batch size: rows in the benchmark format."""
    from paddleopt.deploy.accuracy import eval_data, score_artifact
    from paddleopt.deploy.bench import measure_latency
    from paddleopt.deploy.predictor import load_predictor

    from paddleopt.artifact.shapes import dynamic_dim, require_shapes

    require_shapes(artifact.manifest, f"'{artifact.path}'")
    predictor = load_predictor(artifact, backend, options)
    described = predictor.describe()
    early_exit = bool(artifact.manifest.early_exit)
    if early_exit:
        predictor.reset_counts()  # the histogram of the scored samples only
    scored = score_artifact(predictor, artifact, cfg.eval_samples)
    exits = _early_exit_fields(predictor, artifact) if early_exit else None
    data = eval_data(artifact, max(cfg.batch_sizes) if not early_exit else cfg.eval_samples)
    rows = []
    for batch in cfg.batch_sizes:
        feeds = batch_feeds(predictor, data, batch, dynamic_dim(artifact.manifest))
        timed = predictor
        if early_exit and data is not None:
            from paddleopt.earlyexit.bench import Cycling

            timed = Cycling(predictor, data[0], batch)
        timing = measure_latency(timed, feeds, cfg.warmup, cfg.iters, cfg.max_seconds,
                                 batch_size=batch)
        shapes = {spec.name: list(f.shape) for spec, f in zip(artifact.manifest.io.inputs,
                                                              feeds)}
        rows.append({
            "model": model_name or artifact.manifest.model.get("arch", artifact.path.name),
            "variant": name or f"{backend}-{artifact.manifest.precision}",
            "target": name,
            "artifact": str(artifact.path),
            "backend": backend,
            "precision": artifact.manifest.precision,
            "batch_size": batch,
            "threads": described.get("threads"),
            "onednn": described.get("onednn"),
            "latency_ms": timing["latency_ms"],
            "throughput_per_s": timing["throughput_per_s"],
            "accuracy": scored["accuracy"],
            "eval_samples": scored["eval_samples"],
            "size_bytes": artifact.size_bytes(),
            "peak_rss_mb": timing["peak_rss_mb"],
            "input_shapes": shapes,  # what was timed: dynamic dims are never implicit
            "config": described,
        })
        if exits is not None:
            rows[-1]["early_exit"] = exits
    return rows


def _early_exit_fields(predictor: Any, artifact: Artifact) -> dict[str, Any]:
    from paddleopt.earlyexit.bench import row_fields

    return row_fields(predictor, artifact)


def batch_feeds(predictor: Any, data: Any, batch: int, dynamic_dim: int | None = 16) -> list:
    """One batch of ``batch`` samples: real evaluation samples (repeated when there are
    fewer) when ``data`` = (feeds, labels) is given, else seeded random inputs."""
    import numpy as np

    from paddleopt.deploy.bench import make_feeds

    if data is not None:
        reps = int(np.ceil(batch / len(data[1])))
        return [np.concatenate([x] * reps)[:batch] for x in data[0]]
    return make_feeds(predictor.inputs, batch, np.random.default_rng(0),
                      dynamic_dim=dynamic_dim)


def evaluate_targets(plan: Any, artifacts: dict[str, Artifact]) -> list[dict]:
    produced = [(s.stage_id, type(s.stage).produces) for s in plan.steps]
    rows: list[dict] = []
    for target in plan.config.evaluate.targets:
        stage_id = resolve_target(target, produced)
        artifact = artifacts[stage_id]
        log.info("evaluate %s: %s on %s", target.name, artifact.path.name, target.backend)
        rows += benchmark_rows(artifact, target.backend, target.options, plan.config.evaluate,
                               name=target.name, model_name=plan.config.model.arch)
    return rows


__all__ = ["TargetConfig", "batch_feeds", "benchmark_rows", "evaluate_targets"]
