"""The Python API. Every CLI command is a thin call into one of these functions.

Use them from your own Paddle code too::

    from paddleopt import api
    result = api.run("configs/quickstart.yaml", overrides=["train.epochs=1"], resume=True)
    rows = api.bench(result.artifacts["export"].path, batch_sizes=[1, 32])
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError

COMPRESS_TYPES = ("prune", "sparsify", "distill", "qat", "ptq")


def plan(config: str | Path | dict, overrides: list[str] | None = None) -> Any:
    """Validate a pipeline config (schema, stage configs, kind chain, extras) without running."""
    from paddleopt.stages.pipeline import plan as make_plan

    return make_plan(config, overrides)


def run(config: str | Path | dict, overrides: list[str] | None = None, resume: bool = False,
        until: str | None = None, evaluate: bool = True) -> Any:
    """Plan, then run the pipeline; returns a RunResult (artifacts by stage id, report path)."""
    import logging

    if not logging.getLogger("paddleopt").handlers:
        from paddleopt.utils.logging import setup_logging

        setup_logging()
    from paddleopt.stages.pipeline import run as run_plan

    return run_plan(plan(config, overrides), resume=resume, until=until, evaluate=evaluate)


def run_until_type(config: str | Path | dict, overrides: list[str] | None, types: tuple[str, ...],
                   resume: bool = True, last: bool = False) -> Any:
    """Run the stages up to the first (or last) stage whose type is in ``types``."""
    the_plan = plan(config, overrides)
    matches = [s.stage_id for s in the_plan.steps if s.type in types]
    if not matches:
        raise UserError(f"the pipeline has no {'/'.join(types)} stage.",
                        f"add one under 'stages:' or use `paddleopt run`.")
    from paddleopt.stages.pipeline import run as run_plan

    return run_plan(the_plan, resume=resume, until=matches[-1] if last else matches[0],
                    evaluate=False)


def open_artifact(path: str | Path) -> Any:
    from paddleopt.artifact import Artifact

    return Artifact.open(path)


def latest_artifact(work_dir: str | Path, kinds: tuple[str, ...] = ("inference",)) -> Any:
    """The last finished artifact of one of ``kinds`` in a work dir."""
    from paddleopt.stages.pipeline import stage_artifacts

    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        raise UserError(f"work dir '{work_dir}' does not exist.",
                        "run the pipeline first (paddleopt run -c CONFIG).")
    found = [a for a in stage_artifacts(work_dir) if a.kind in kinds]
    if not found:
        raise UserError(f"no finished {'/'.join(kinds)} artifact in '{work_dir}'.",
                        "run the pipeline first, or pass an ARTIFACT folder.")
    return found[-1]


def bench(artifact: str | Path, batch_sizes: list[int] | None = None,
          backend: str | None = None, options: dict[str, Any] | None = None,
          warmup: int = 10, iters: int = 200, max_seconds: float = 5.0,
          eval_samples: int | None = None) -> list[dict]:
    """Latency percentiles, throughput, peak RSS, size and accuracy of one deployment."""
    from paddleopt.config.sections import EvaluateConfig
    from paddleopt.deploy.predictor import default_backend
    from paddleopt.report.evaluate import benchmark_rows

    art = open_artifact(artifact)
    art.verify()
    backend = backend or default_backend(art.kind)
    cfg = EvaluateConfig(batch_sizes=batch_sizes or [1], warmup=warmup, iters=iters,
                         max_seconds=max_seconds, eval_samples=eval_samples)
    return benchmark_rows(art, backend, options or {}, cfg)


def infer(artifact: str | Path, inputs: list[str], backend: str | None = None,
          options: dict[str, Any] | None = None, top_k: int = 1) -> list[dict]:
    """Predictions for raw inputs (image files or .npy arrays), using the manifest's
    preprocessing so no training config is needed."""
    import numpy as np

    from paddleopt.deploy.inputs import load_inputs
    from paddleopt.deploy.predictor import load_predictor

    art = open_artifact(artifact)
    predictor = load_predictor(art, backend, options)
    feeds, names = load_inputs(art, inputs)
    logits = predictor.run(feeds)[0]
    labels = art.manifest.labels
    results = []
    for name, row in zip(names, logits):
        row = np.asarray(row, dtype=np.float64).reshape(-1)
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        order = np.argsort(-probs)[:top_k]
        results.append({"input": name, "predictions": [
            {"class_id": int(i), "label": labels[i] if i < len(labels) else str(int(i)),
             "score": float(probs[i])} for i in order]})
    return results


def report(work_dir: str | Path) -> Path:
    from paddleopt.report.render import render_markdown

    return render_markdown(Path(work_dir))


def doctor() -> dict[str, Any]:
    from paddleopt.utils.doctor import collect

    return collect()
