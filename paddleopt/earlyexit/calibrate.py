"""Per-exit confidence thresholds chosen on held-out data to an accuracy budget.

A sample leaves at the first exit whose confidence (max softmax probability) reaches that
exit's threshold; samples no exit takes get the final head. Given every exit's probabilities
on held-out data, the labels, the cost of stopping at each exit and the accuracy to keep, the
thresholds with the lowest mean cost per sample that keep the accuracy are searched:
exhaustively over a grid of candidate thresholds per exit (the confidence quantiles, plus
"disabled") when the grid is small, else by coordinate descent over the same candidates.
A disabled exit (threshold None) is one whose head costs more than it saves.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DISABLED = None  # threshold of an exit that never fires
_GRID_LIMIT = 50_000  # threshold combinations tried exhaustively


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confidence(logits: np.ndarray) -> np.ndarray:
    """Max softmax probability per row."""
    return softmax(np.asarray(logits, dtype=np.float64)).max(axis=-1)


@dataclass
class Outcome:
    """What a set of thresholds does on a data set."""

    thresholds: list[float | None]
    accuracy: float
    histogram: list[int]  # samples leaving at each exit, the final head last
    mean_cost: float
    met: bool = True  # the accuracy target was reached
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, full_cost: float | None = None) -> dict[str, Any]:
        out = {"thresholds": self.thresholds, "accuracy": round(self.accuracy, 5),
               "histogram": self.histogram, "mean_cost": round(self.mean_cost, 5),
               "target_met": self.met}
        if full_cost:
            out["relative_cost"] = round(self.mean_cost / full_cost, 4)
        return out


def exit_index(conf: list[np.ndarray], thresholds: list[float | None], n: int) -> np.ndarray:
    """Which of ``n`` samples leaves at which exit (len(thresholds) = the final head)."""
    taken = np.full(n, len(thresholds), dtype=np.int64)
    open_ = np.ones(n, dtype=bool)
    for i, t in enumerate(thresholds):
        if t is None:
            continue
        hit = open_ & (conf[i] >= t)
        taken[hit] = i
        open_ &= ~hit
    return taken


def simulate(logits: list[np.ndarray], labels: np.ndarray, thresholds: list[float | None],
             costs: list[float]) -> Outcome:
    """Accuracy, exit histogram and mean cost of ``thresholds``.

    Args:
        logits: each exit's logits then the final head's, each (N, classes).
        costs: the cost of a sample that leaves at each exit (cumulative), final last.
    """
    conf = [confidence(x) for x in logits[:-1]]
    preds = np.stack([np.asarray(x).argmax(-1) for x in logits])  # (E+1, N)
    return _outcome(conf, preds, np.asarray(labels), thresholds, np.asarray(costs, float))


def _outcome(conf: list[np.ndarray], preds: np.ndarray, labels: np.ndarray,
             thresholds: list[float | None], costs: np.ndarray) -> Outcome:
    taken = exit_index(conf, thresholds, len(labels))
    correct = preds[taken, np.arange(len(labels))] == labels
    hist = np.bincount(taken, minlength=len(thresholds) + 1)
    return Outcome(list(thresholds), float(correct.mean()), [int(h) for h in hist],
                   float(costs[taken].mean()))


def choose_thresholds(logits: list[np.ndarray], labels: np.ndarray, costs: list[float],
                      target_accuracy: float, quantiles: int = 40) -> Outcome:
    """The cheapest thresholds whose accuracy on this data is >= ``target_accuracy``.

    When not even the final head alone reaches the target, every exit is disabled and the
    outcome says ``met=False``.
    """
    labels = np.asarray(labels)
    conf = [confidence(x) for x in logits[:-1]]
    preds = np.stack([np.asarray(x).argmax(-1) for x in logits])
    cost_arr = np.asarray(costs, dtype=float)
    candidates = [_candidates(c, quantiles) for c in conf]

    def score(ths: list[float | None]) -> tuple[bool, float, float, Outcome]:
        out = _outcome(conf, preds, labels, ths, cost_arr)
        ok = out.accuracy >= target_accuracy - 1e-12
        return ok, out.mean_cost, -out.accuracy, out

    best: Outcome | None = None
    best_key: tuple[float, float] | None = None
    n_combos = int(np.prod([len(c) for c in candidates])) if candidates else 1
    if n_combos <= _GRID_LIMIT:
        combos = itertools.product(*candidates)
    else:
        combos = iter([_descend(candidates, score)])
    for ths in combos:
        ok, cost, neg_acc, out = score(list(ths))
        if ok and (best_key is None or (cost, neg_acc) < best_key):
            best, best_key = out, (cost, neg_acc)
    if best is None:
        best = _outcome(conf, preds, labels, [DISABLED] * len(conf), cost_arr)
        best.met = False
    return best


def _candidates(conf: np.ndarray, quantiles: int) -> list[float | None]:
    """Thresholds worth trying for one exit: confidence quantiles (so each step lets a
    similar share of samples leave), and disabled."""
    qs = np.quantile(conf, np.linspace(0.0, 1.0, quantiles + 1))
    values = sorted({round(float(q), 6) for q in qs})
    return [DISABLED, *values]


def _descend(candidates: list[list[float | None]], score: Any, rounds: int = 3
             ) -> tuple[float | None, ...]:
    """Coordinate descent for many exits: improve one exit's threshold at a time."""
    current: list[float | None] = [DISABLED] * len(candidates)
    for _ in range(rounds):
        changed = False
        for i, options in enumerate(candidates):
            best_key, best_t = None, current[i]
            for t in options:
                trial = [*current[:i], t, *current[i + 1:]]
                ok, cost, neg_acc, _ = score(trial)
                if ok and (best_key is None or (cost, neg_acc) < best_key):
                    best_key, best_t = (cost, neg_acc), t
            if best_t != current[i]:
                current[i], changed = best_t, True
        if not changed:
            break
    return tuple(current)
