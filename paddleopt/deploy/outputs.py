"""Turn model outputs into answers: softmax scores and top-k classes with labels.

Shared by ``paddleopt infer`` (``api.infer``) and the server's ``top_k`` answers.
"""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def top_k_classes(logits: np.ndarray, labels: list[str], top_k: int) -> list[list[dict]]:
    """Per row of a [N, classes] output: the ``top_k`` classes by softmax score, each
    ``{"class_id", "label", "score"}`` (label: the class id when ``labels`` has none)."""
    out = []
    for row in softmax(logits, axis=1):
        order = np.argsort(-row)[:top_k]
        out.append([{"class_id": int(i), "label": labels[i] if i < len(labels) else str(int(i)),
                     "score": float(row[i])} for i in order])
    return out
