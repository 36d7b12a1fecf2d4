"""DB boxes and the detection hmean on maps whose boxes are known, and the OCR task metric
(``paddleopt.metrics.ocr.task_score``) on outputs whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.metrics import ocr, textdet


def _map_with(boxes: list[tuple[int, int, int, int]], value: float = 0.9) -> np.ndarray:
    prob = np.zeros((1, 64, 96), dtype=np.float32)
    for x0, y0, x1, y1 in boxes:
        prob[0, y0:y1, x0:x1] = value
    return prob


def test_db_boxes_grow_each_region_back_by_the_unclip_distance() -> None:
    found = textdet.db_boxes(_map_with([(10, 40, 50, 50), (20, 10, 60, 20)]))
    # 40 x 10 region: d = 400 * 1.5 / (2 * 50) = 6 pixels on every side; sorted top first
    assert [box for box, _ in found] == [(14, 4, 66, 26), (4, 34, 56, 56)]
    assert all(score == pytest.approx(0.9) for _, score in found)
    # a faint region (mean below box_thresh 0.6) and a sliver (< 3 px) are not text
    assert textdet.db_boxes(_map_with([(10, 10, 40, 20)], value=0.5)) == []
    assert textdet.db_boxes(_map_with([(10, 10, 40, 12)])) == []


def test_detection_scores_match_boxes_one_to_one_at_iou_half() -> None:
    truth = [[(0, 0, 10, 10), (20, 0, 30, 10)], [(0, 0, 10, 10)]]
    predicted = [[(0, 0, 10, 10), (1, 0, 11, 10), (50, 50, 60, 60)], []]
    s = textdet.detection_scores(predicted, truth)
    # image 1: one match (the near-duplicate cannot reuse its truth box), image 2: none
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["hmean"] == pytest.approx(1 / 3)
    assert s["matched_iou"] == pytest.approx(1.0)
    assert textdet.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_task_score_per_ocr_task(tmp_path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("a\nb\n", encoding="utf-8")  # charset: blank, a, b, space
    scores = np.zeros((2, 4, 4), dtype=np.float32)
    for n, ids in enumerate([[1, 1, 0, 2], [2, 0, 0, 0]]):  # "ab", "b"
        scores[n, np.arange(4), ids] = 1.0
    rec = ocr.task_score("rec", [scores], ["ab", "a"], keys)
    assert rec["metric"] == "exact_strings" and rec["score"] == 0.5
    assert rec["char_accuracy"] == pytest.approx(1 - 1 / 3)
    cls = ocr.task_score("cls", [np.array([[0.9, 0.1], [0.2, 0.8]])], [0, 0])
    assert (cls["metric"], cls["score"]) == ("top1", 0.5)
    det = ocr.task_score("det", [_map_with([(10, 40, 50, 50)])[None]], [[(4, 34, 56, 56)]])
    assert (det["metric"], det["score"], det["box_iou"]) == ("det_hmean", 1.0, 1.0)
    with pytest.raises(ValueError, match="keys_file"):
        ocr.task_score("rec", [scores], ["ab", "a"])
