"""Task metrics for OCR models: CTC recognisers (decoded strings) and DB text detectors.

A PaddleOCR recogniser outputs ``[N, T, C]`` scores over ``C = 1 + len(keys) (+1 space)``
classes; class 0 is the CTC blank. Greedy decoding takes the argmax per time step, merges
repeats and drops blanks (PaddleOCR's ``CTCLabelDecode``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


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
        keep = np.ones(len(ids), dtype=bool)
        keep[1:] = ids[1:] != ids[:-1]
        out.append("".join(charset[i] for i in ids[keep & (ids != 0)]))
    return out


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
        out = []
        for ids in np.asarray(scores).argmax(-1):
            keep = np.ones(len(ids), dtype=bool)
            keep[1:] = ids[1:] != ids[:-1]
            out.append(tuple(int(i) for i in ids[keep & (ids != 0)]))
        return out

    got, ref = collapse(outputs[0]), collapse(reference[0])
    return float(np.mean([g == r for g, r in zip(got, ref)]))
