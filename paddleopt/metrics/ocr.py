"""Task metrics for OCR models: CTC recognisers (decoded strings), text-direction
classifiers and DB text detectors (boxes: ``paddleopt.metrics.textdet``).

A PaddleOCR recogniser outputs ``[N, T, C]`` scores over ``C = 1 + len(keys) (+1 space)``
classes; class 0 is the CTC blank. Greedy decoding takes the argmax per time step, merges
repeats and drops blanks (PaddleOCR's ``CTCLabelDecode``).

``task_score`` is the one place that scores an OCR model's outputs against ground truth; the
benchmarks (backends.py, peers.py) and tests call it.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("rec", "cls", "det")


def task_score(kind: str, outputs: Sequence[np.ndarray], truth: Any,
               keys_file: str | Path | None = None) -> dict[str, Any]:
    """An OCR model's task metric against ground truth: ``{"metric", "score", ...}``.

    - ``rec``: ``[N, T, C]`` CTC scores vs the expected strings: share decoded exactly
      (``exact_strings``; ``keys_file`` gives the characters), plus ``char_accuracy``;
    - ``cls``: ``[N, 2]`` direction scores vs labels (0 upright, 1 rotated 180): ``top1``;
    - ``det``: ``[N, 1, H, W]`` probability maps vs the true boxes per image: detection
      ``hmean`` at IoU 0.5 of the DB boxes, plus precision, recall and the matched boxes'
      mean IoU (``box_iou``).
    """
    scores = np.asarray(outputs[0])
    if kind == "rec":
        if keys_file is None:
            raise ValueError("scoring a recogniser needs its keys_file (the characters)")
        decoded = ctc_greedy_decode(scores, _charset(str(keys_file)))
        return {"metric": "exact_strings", "score": exact_match(decoded, truth),
                "char_accuracy": char_accuracy([d.strip() for d in decoded],
                                               [t.strip() for t in truth])}
    if kind == "cls":
        return {"metric": "top1", "score": float(np.mean(scores.argmax(-1) ==
                                                         np.asarray(truth)))}
    if kind == "det":
        from paddleopt.metrics.textdet import db_boxes, detection_scores

        found = detection_scores([[box for box, _ in db_boxes(m)] for m in scores], truth)
        return {"metric": "det_hmean", "score": found["hmean"],
                "precision": found["precision"], "recall": found["recall"],
                "box_iou": found["matched_iou"]}
    raise ValueError(f"unknown OCR task '{kind}': use one of {TASKS}")


@functools.lru_cache(maxsize=4)
def _charset(keys_file: str) -> tuple[str, ...]:
    return tuple(load_charset(keys_file))


def load_charset(keys_file: str | Path, use_space_char: bool = True) -> list[str]:
    """PaddleOCR's character list: blank, the keys file's lines, then ' ' if used."""
    keys = Path(keys_file).read_text(encoding="utf-8").splitlines()
    return ["<blank>", *keys, *([" "] if use_space_char else [])]


def ctc_greedy_decode(scores: np.ndarray, charset: Sequence[str]) -> list[str]:
    """``[N, T, C]`` scores -> one string per sample."""
    scores = np.asarray(scores)
    if scores.ndim != 3:
        raise ValueError(f"CTC scores must be [N, T, C], got shape {scores.shape}")
    if scores.shape[-1] != len(charset):
        raise ValueError(f"the model scores {scores.shape[-1]} classes but the charset has "
                         f"{len(charset)} (blank + keys + space?)")
    out = []
    for ids in scores.argmax(-1):
        out.append("".join(charset[i] for i in ids[ctc_kept(ids)]))
    return out


def ctc_kept(ids: np.ndarray) -> np.ndarray:
    """Greedy CTC: which time steps of the argmax ``ids`` are characters (the first of each
    run of repeats, not blank 0)."""
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    return keep & (ids != 0)


def exact_match(predicted: Sequence[str], expected: Sequence[str], strip: bool = True
                ) -> float:
    """Share of strings that are exactly equal (after stripping outer spaces: a recogniser
    reads the padding right of a line, and its margins, as spaces)."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions vs {len(expected)} expected strings")
    if strip:
        predicted, expected = [p.strip() for p in predicted], [e.strip() for e in expected]
    return float(np.mean([p == e for p, e in zip(predicted, expected)])) if expected else 1.0


def char_accuracy(predicted: Sequence[str], expected: Sequence[str]) -> float:
    """1 - total edit distance / total expected characters (PaddleOCR's norm_edit_dis)."""
    dist = sum(_edit_distance(p, e) for p, e in zip(predicted, expected))
    total = sum(max(len(p), len(e)) for p, e in zip(predicted, expected))
    return 1.0 - dist / total if total else 1.0


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def ctc_agreement(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Share of samples whose greedy CTC decoding equals the reference model's: the exact
    decoded strings agree (no charset needed: equal collapsed id sequences = equal text).
    A ``paddleopt.metrics.reference`` user metric for recognisers."""
    def collapse(scores: np.ndarray) -> list[tuple[int, ...]]:
        return [tuple(int(i) for i in ids[ctc_kept(ids)])
                for ids in np.asarray(scores).argmax(-1)]

    got, ref = collapse(outputs[0]), collapse(reference[0])
    return float(np.mean([g == r for g, r in zip(got, ref)]))
