"""Agreement measures and OCR task metrics on arrays whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.metrics import agreement, ocr


def test_top1_agreement_counts_positions_not_samples() -> None:
    ref = np.zeros((2, 3, 4), dtype=np.float32)
    ref[..., 1] = 1.0  # every time step says class 1
    out = ref.copy()
    out[0, 2] = [0, 0, 5, 0]  # one of six positions changes its argmax
    assert agreement.top1_agreement(out, ref) == pytest.approx(5 / 6)
    result = agreement.agreement([out], [ref])
    assert result["metric"] == "top1_agreement"
    assert result["score"] == pytest.approx(5 / 6)
    assert result["outputs"][0]["relative_error"] > 0


def test_cosine_and_relative_error() -> None:
    ref = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    assert agreement.cosine(ref, ref) == pytest.approx(1.0)
    assert agreement.cosine(-ref, ref) == pytest.approx(-1.0)
    assert agreement.relative_error(ref * 1.01, ref) == pytest.approx(0.01, rel=1e-4)
    assert agreement.cosine(np.zeros((2, 3)), np.zeros((2, 3))) == 1.0


def test_maps_are_compared_by_iou() -> None:
    ref = np.zeros((1, 1, 8, 8), dtype=np.float32)
    ref[..., 2:4, 2:6] = 0.9
    out = np.zeros_like(ref)
    out[..., 2:4, 2:4] = 0.9
    result = agreement.agreement([out], [ref])
    assert result["metric"] == "mask_iou"
    assert result["score"] == pytest.approx(0.5)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differs"):
        agreement.top1_agreement(np.zeros((2, 3)), np.zeros((3, 3)))


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks() -> None:
    charset = ["<blank>", "a", "b", " "]
    ids = [1, 1, 0, 1, 2, 2, 3, 0]  # a a _ a b b ' ' _  -> "aab "
    scores = np.eye(4, dtype=np.float32)[ids][None]
    assert ocr.ctc_greedy_decode(scores, charset) == ["aab "]
    assert ocr.exact_match(["aab "], ["aab"]) == 1.0
    assert ocr.exact_match(["aab "], ["aab"], strip=False) == 0.0
    assert ocr.char_accuracy(["abc"], ["abd"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="charset"):
        ocr.ctc_greedy_decode(scores, charset[:3])


def test_ctc_scores_are_not_taken_for_a_map() -> None:
    ref = np.zeros((2, 40, 6625), dtype=np.float32)
    ref[..., 0] = 1.0
    assert agreement.agreement([ref], [ref])["metric"] == "top1_agreement"
