"""Text-detector boxes and their task metric: DB probability map -> boxes -> hmean vs truth.

A DB detector (PaddleOCR's PP-OCR det) outputs ``[N, 1, H, W]`` text probabilities over a
region *shrunk* inside each text line; its post-processing (``DBPostProcess``) binarizes the
map at ``thresh``, keeps regions whose mean probability reaches ``box_thresh`` and grows each
back by ``d = area * unclip_ratio / perimeter``. Here regions are axis-aligned rectangles
(connected components), which fits horizontal text; rotated text would need PaddleOCR's
polygon version. Boxes are ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive.

The task metric is the ICDAR-style detection hmean: a predicted box matches a ground-truth
box when their IoU is >= 0.5 (each used once); precision, recall, hmean over all images.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[int, int, int, int]


def db_boxes(prob: np.ndarray, thresh: float = 0.3, box_thresh: float = 0.6,
             unclip_ratio: float = 1.5, min_size: int = 3) -> list[tuple[Box, float]]:
    """One ``[H, W]`` (or ``[1, H, W]``) probability map -> [(box, score)], top to bottom."""
    from scipy import ndimage

    prob = np.asarray(prob, dtype=np.float32)
    prob = prob.reshape(prob.shape[-2:])
    h, w = prob.shape
    labels, _ = ndimage.label(prob > thresh)
    out = []
    for index, region in enumerate(ndimage.find_objects(labels), 1):
        if region is None:
            continue
        ys, xs = region
        bh, bw = ys.stop - ys.start, xs.stop - xs.start
        if min(bh, bw) < min_size:
            continue
        score = float(prob[region][labels[region] == index].mean())
        if score < box_thresh:
            continue
        d = bw * bh * unclip_ratio / (2 * (bw + bh))
        box = (max(0, int(round(xs.start - d))), max(0, int(round(ys.start - d))),
               min(w, int(round(xs.stop + d))), min(h, int(round(ys.stop + d))))
        out.append((box, score))
    return sorted(out, key=lambda item: (item[0][1], item[0][0]))


def box_iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detection_scores(predicted: Sequence[Sequence[Box]], truth: Sequence[Sequence[Box]],
                     iou: float = 0.5) -> dict[str, float]:
    """Precision, recall and hmean of boxes over images (greedy one-to-one matching by IoU,
    best pairs first), plus the mean IoU of the matched pairs."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} images of predictions vs {len(truth)} of truth")
    matched, n_pred, n_true, ious = 0, 0, 0, []
    for pred, true in zip(predicted, truth):
        n_pred, n_true = n_pred + len(pred), n_true + len(true)
        pairs = sorted(((box_iou(p, t), i, j) for i, p in enumerate(pred)
                        for j, t in enumerate(true)), reverse=True)
        used_p, used_t = set(), set()
        for value, i, j in pairs:
            if value < iou:
                break
            if i in used_p or j in used_t:
                continue
            used_p.add(i)
            used_t.add(j)
            ious.append(value)
        matched += len(used_p)
    precision = matched / n_pred if n_pred else float(n_true == 0)
    recall = matched / n_true if n_true else 1.0
    hmean = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "hmean": hmean,
            "matched_iou": float(np.mean(ious)) if ious else 0.0}


def detection_hmean(prob_maps: np.ndarray, truth: Sequence[Sequence[Box]]) -> float:
    """The hmean of ``db_boxes`` of each map in ``[N, 1, H, W]`` against the true boxes."""
    boxes = [[box for box, _ in db_boxes(m)] for m in np.asarray(prob_maps)]
    return detection_scores(boxes, truth)["hmean"]
