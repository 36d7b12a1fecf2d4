"""Threshold calibration: the cheapest thresholds that keep the accuracy target, exits that
do not pay are disabled, an unreachable target disables every exit."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.earlyexit import calibrate
from paddleopt.earlyexit.calibrate import choose_thresholds, exit_index, simulate


def _logits(labels: np.ndarray, correct: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Logits predicting the label where ``correct`` (else label + 1) with ``margin``."""
    out = np.zeros((len(labels), 10))
    pred = np.where(correct, labels, (labels + 1) % 10)
    out[np.arange(len(labels)), pred] = margin
    return out


@pytest.fixture
def easy_hard():
    """1000 samples: 80% easy (exit 0 right and confident), 20% hard (exit 0 wrong but
    unsure); the final head is right on all but 1%."""
    rng = np.random.default_rng(0)
    n = 1000
    y = rng.integers(0, 10, n)
    easy = np.arange(n) < 800
    exit0 = _logits(y, easy, np.where(easy, 8.0, 1.0))
    final = _logits(y, rng.random(n) > 0.01, np.full(n, 6.0))
    return [exit0, final], y


def test_confident_samples_leave_early_within_the_budget(easy_hard):
    logits, y = easy_hard
    reference = simulate(logits[-1:], y, [], [1.0]).accuracy
    out = choose_thresholds(logits, y, [0.4, 1.1], reference - 0.005)
    assert out.met and out.accuracy >= reference - 0.005
    assert out.histogram == [800, 200]  # every easy sample, no hard one
    assert out.mean_cost == pytest.approx(0.8 * 0.4 + 0.2 * 1.1)
    # the same thresholds replayed give the same numbers
    again = simulate(logits, y, out.thresholds, [0.4, 1.1])
    assert again.histogram == out.histogram and again.accuracy == out.accuracy


def test_an_exit_that_costs_more_than_it_saves_is_disabled(easy_hard):
    logits, y = easy_hard
    # stopping at exit 0 costs as much as running everything: never worth it
    final_only = simulate(logits[-1:], y, [], [1.0]).accuracy
    out = choose_thresholds(logits, y, [1.0, 1.0], 0.0)
    assert out.mean_cost == pytest.approx(1.0) and out.accuracy >= final_only
    # an exit that only costs (wrong on everything): whatever the target, it is not taken
    wrong = [_logits(y, np.zeros(len(y), bool), np.full(len(y), 9.0)), logits[1]]
    out = choose_thresholds(wrong, y, [0.5, 1.1], final_only)
    assert out.histogram[0] == 0 and out.accuracy == final_only


def test_unreachable_target_disables_every_exit(easy_hard):
    logits, y = easy_hard
    out = choose_thresholds(logits, y, [0.4, 1.1], 1.01)
    assert not out.met and out.thresholds == [None] and out.histogram == [0, 1000]


def test_exit_index_takes_the_first_confident_exit():
    conf = [np.array([0.9, 0.5, 0.2]), np.array([0.1, 0.95, 0.3])]
    assert exit_index(conf, [0.8, 0.9], 3).tolist() == [0, 1, 2]
    assert exit_index(conf, [None, 0.9], 3).tolist() == [2, 1, 2]


def test_coordinate_descent_for_many_exits(easy_hard, monkeypatch):
    logits, y = easy_hard
    monkeypatch.setattr(calibrate, "_GRID_LIMIT", 1)  # force the descent path
    three = [logits[0], logits[0], logits[1]]
    out = choose_thresholds(three, y, [0.4, 0.7, 1.1], simulate(logits[-1:], y, [], [1]).accuracy
                            - 0.005)
    assert out.met and out.histogram[0] == 800 and out.histogram[1] == 0
