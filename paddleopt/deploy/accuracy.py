"""Accuracy of any Predictor on an artifact's evaluation data."""
from __future__ import annotations

from typing import Any

import numpy as np

from paddleopt.artifact import Artifact
from paddleopt.deploy.predictor import Predictor


def predict_batched(predictor: Predictor, feeds: list[np.ndarray], batch_size: int) -> np.ndarray:
    """First output for all rows of ``feeds`` (one array per input), ``batch_size`` at a time."""
    total = len(feeds[0])
    outs = [predictor.run([f[i:i + batch_size] for f in feeds])[0]
            for i in range(0, total, batch_size)]
    return np.concatenate(outs)


def accuracy(predictor: Predictor, feeds: list[np.ndarray], y: np.ndarray,
             batch_size: int = 64) -> float:
    logits = predict_batched(predictor, feeds, batch_size)
    return float((logits.argmax(axis=-1) == y).mean())


def eval_data(artifact: Artifact, limit: int | None
              ) -> tuple[list[np.ndarray], np.ndarray] | None:
    """The artifact's own evaluation split (from its manifest), or None if it records none."""
    from paddleopt.data.loaders import data_from_manifest

    m = artifact.manifest
    if not m.dataset:
        return None
    bundle = data_from_manifest(m.dataset, m.preprocess, limit)
    return None if bundle is None else bundle.eval_feeds()


def score_artifact(predictor: Predictor, artifact: Artifact, limit: int | None,
                   batch_size: int = 64) -> dict[str, Any]:
    data = eval_data(artifact, limit)
    if data is None:
        return {"accuracy": None, "eval_samples": 0}
    x, y = data
    return {"accuracy": accuracy(predictor, x, y, batch_size), "eval_samples": int(len(y))}
