"""Label-free accuracy: a model scored by how closely it follows the fp32 model.

``Reference`` holds the fp32 model's outputs on real held-out inputs; ``score(outputs)`` gives
the named measure (``paddleopt.metrics.agreement.agreement``: top-1 agreement per position for
scores over classes, mask IoU for probability maps) or a user metric
``package.module:function`` called as ``function(outputs, reference_outputs) -> float``
(higher is better, 1.0 = identical to fp32), e.g. ``paddleopt.metrics.ocr:ctc_agreement``.
The fp32 model scores 1.0 by construction, so "accuracy drop" = 1 - score.

``Labelled`` is the same contract for data *with* labels and a user metric: ``score(outputs)``
calls ``function(outputs, labels) -> float`` (higher is better, e.g. exact decoded strings
against the true text); the fp32 model is scored the same way, so the drop is fp32 - INT8.
Both are what the ptq stage's search and record take where labels would be.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paddleopt.metrics.agreement import agreement
from paddleopt.utils.errors import UserError


def load_metric(spec: str, where: str = "metric") -> Callable[..., float]:
    """``package.module:function`` -> the function (clear error when it is not one)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"{where}: '{spec}' is not 'package.module:function'.",
                        "e.g. metric: paddleopt.metrics.ocr:ctc_agreement")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"{where}: cannot import '{module_name}': {exc}",
                        "make the module importable (pip install -e . or PYTHONPATH).") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"{where}: '{module_name}' has no function '{attr}'.",
                        f"define def {attr}(outputs, reference) -> float in it.")
    return fn


def run_all(predictor: Any, feeds: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
    """Every output of ``predictor`` for all rows of ``feeds``, ``batch_size`` rows a call."""
    chunks: list[list[np.ndarray]] = []
    for i in range(0, len(feeds[0]), batch_size):
        chunks.append([np.asarray(o) for o in predictor.run([f[i:i + batch_size]
                                                             for f in feeds])])
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


@dataclass
class Reference:
    """fp32 outputs on held-out inputs (stands where labels would)."""

    outputs: list[np.ndarray]
    metric: str | None = None  # None: the built-in agreement; else package.module:function
    inputs_from: str = ""  # where the held-out inputs came from (recorded)
    _fn: Any = field(default=None, repr=False)
    label_free = True  # the fp32 model is the reference: it scores 1.0

    def __len__(self) -> int:
        return len(self.outputs[0])

    def score(self, outputs: list[np.ndarray]) -> dict[str, Any]:
        result = agreement(outputs, self.outputs)
        if self.metric:
            if self._fn is None:
                self._fn = load_metric(self.metric, "evaluation.metric")
            value = float(self._fn(outputs, self.outputs))
            result = {**result, "metric": self.metric, "score": value,
                      "builtin": {"metric": result["metric"], "score": result["score"]}}
        result["samples"] = len(self)
        result["inputs"] = self.inputs_from
        return result


@dataclass
class Labelled:
    """Labels of held-out inputs, scored by a user metric ``function(outputs, labels)``."""

    labels: Any  # as the data holds them: class ids, strings, boxes ... (the metric's business)
    metric: str  # package.module:function
    inputs_from: str = ""
    _fn: Any = field(default=None, repr=False)
    label_free = False

    def __len__(self) -> int:
        return len(self.labels)

    def score(self, outputs: list[np.ndarray]) -> dict[str, Any]:
        if self._fn is None:
            self._fn = load_metric(self.metric, "evaluation.metric")
        value = float(self._fn(outputs, self.labels))
        return {"metric": self.metric, "score": value, "samples": len(self),
                "inputs": self.inputs_from}
