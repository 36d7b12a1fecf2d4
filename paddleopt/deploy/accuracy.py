"""Accuracy of any Predictor on an artifact's evaluation data."""
from __future__ import annotations

from typing import Any

import numpy as np

from paddleopt.artifact import Artifact
from paddleopt.deploy.predictor import Predictor


def predict_batched(predictor: Predictor, x: np.ndarray, batch_size: int) -> np.ndarray:
    """First output for all of ``x``, fed ``batch_size`` rows at a time."""
    outs = [predictor.run([x[i:i + batch_size]])[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


def accuracy(predictor: Predictor, x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> float:
    logits = predict_batched(predictor, x, batch_size)
    return float((logits.argmax(axis=-1) == y).mean())


def eval_data(artifact: Artifact, limit: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The artifact's own evaluation split (from its manifest), or None if it records none."""
    from paddleopt.data.loaders import data_from_manifest

    m = artifact.manifest
    if not m.dataset or len(m.io.inputs) != 1:
        return None
    bundle = data_from_manifest(m.dataset, m.preprocess, limit)
    return None if bundle is None else bundle.eval_arrays()


def score_artifact(predictor: Predictor, artifact: Artifact, limit: int | None,
                   batch_size: int = 64) -> dict[str, Any]:
    data = eval_data(artifact, limit)
    if data is None:
        return {"accuracy": None, "eval_samples": 0}
    x, y = data
    return {"accuracy": accuracy(predictor, x, y, batch_size), "eval_samples": int(len(y))}
