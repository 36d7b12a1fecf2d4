"""The shared answer and input helpers used by `paddleopt infer` and the server."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from paddleopt.deploy.inputs import name_mismatch, shape_fits
from paddleopt.deploy.outputs import softmax, top_k_classes


def test_top_k_classes_orders_softmax_scores_and_falls_back_to_ids():
    logits = np.array([[1.0, 3.0, 2.0], [1000.0, 0.0, 1000.0]], np.float32)  # stable at 1e3
    probs = softmax(logits, axis=1)
    assert np.allclose(probs.sum(axis=1), 1.0) and np.isfinite(probs).all()
    top = top_k_classes(logits, ["cat", "dog"], 2)
    assert [p["label"] for p in top[0]] == ["dog", "2"]  # class 2 has no label: its id
    assert top[0][0]["score"] > top[0][1]["score"] and top[0][0]["class_id"] == 1
    assert abs(top[1][0]["score"] - 0.5) < 1e-9


def test_input_names_and_shapes():
    specs = [SimpleNamespace(name="x"), SimpleNamespace(name="mask")]
    assert name_mismatch({"x": 1, "y": 2}, specs) == (["mask"], ["y"])
    assert name_mismatch(["x", "mask"], specs) == ([], [])
    assert shape_fits((4, 3, 8), [-1, 3, 8]) and not shape_fits((4, 3), [-1, 3, 8])
    assert not shape_fits((4, 1, 8), [-1, 3, 8])
