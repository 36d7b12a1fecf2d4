"""How closely a model's outputs follow a reference's (e.g. INT8 vs fp32 on real inputs).

Each output tensor is compared as ``[batch, ..., classes]`` (the last axis holds the scores):
- ``top1_agreement``: the share of positions (every index but the last axis) whose argmax
  over the last axis is the same. For a classifier it is per sample; for a CTC recogniser
  ``[N, T, C]`` per time step; for a segmentation/probability map ``[N, 1, H, W]`` the last
  axis is W, so use ``mask_iou`` instead (``agreement`` picks by shape).
- ``cosine``: cosine similarity of the flattened outputs, per sample, averaged.
- ``relative_error``: ||out - ref|| / ||ref|| over the whole tensor.

Names are part of the recorded result (``{"metric": "top1_agreement", ...}``), so a report
says which number it shows.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def top1_agreement(out: np.ndarray, ref: np.ndarray) -> float:
    """Share of positions whose argmax over the last axis matches the reference's."""
    out, ref = _pair(out, ref)
    if out.ndim == 0 or out.shape[-1] < 2:
        raise ValueError("top1_agreement needs a last axis of at least 2 scores; "
                         f"got shape {out.shape}")
    return float(np.mean(out.argmax(-1) == ref.argmax(-1)))


def cosine(out: np.ndarray, ref: np.ndarray) -> float:
    """Mean over samples (axis 0) of the cosine similarity of the flattened outputs."""
    out, ref = _pair(out, ref)
    a = out.reshape(out.shape[0], -1).astype(np.float64) if out.ndim else out.reshape(1, 1)
    b = ref.reshape(ref.shape[0], -1).astype(np.float64) if ref.ndim else ref.reshape(1, 1)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    # Two all-zero rows agree perfectly; one zero row against a non-zero one does not.
    sims = np.where(den > 0, num / np.maximum(den, 1e-30),
                    (np.abs(a).sum(1) + np.abs(b).sum(1) == 0).astype(np.float64))
    return float(sims.mean())


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """||out - ref|| / ||ref|| (0 when both are zero)."""
    out, ref = _pair(out, ref)
    den = float(np.linalg.norm(ref.astype(np.float64)))
    num = float(np.linalg.norm((out - ref).astype(np.float64)))
    return num / den if den > 0 else (0.0 if num == 0 else float("inf"))


def mask_iou(out: np.ndarray, ref: np.ndarray, threshold: float = 0.3) -> float:
    """IoU of the two maps binarized at ``threshold`` (1.0 when both are empty)."""
    out, ref = _pair(out, ref)
    a, b = out > threshold, ref > threshold
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def is_map(shape: Sequence[int]) -> bool:
    """[N, 1, H, W] with both spatial sides > 2: a probability/score map. A 3-D output is
    never taken for one: [N, T, C] is a sequence of scores (CTC), judged by top-1."""
    return len(shape) == 4 and shape[1] == 1 and min(shape[2:]) > 2


def agreement(outs: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Every fitting measure for each output tensor, plus the headline ``score`` (the
    primary measure of the first output: top-1 agreement for scores over classes, mask IoU
    for probability maps) and its name in ``metric``."""
    if len(outs) != len(refs):
        raise ValueError(f"{len(outs)} outputs vs {len(refs)} reference outputs")
    per_output = []
    for out, ref in zip(outs, refs):
        out, ref = _pair(out, ref)
        item: dict[str, Any] = {"shape": list(out.shape), "cosine": cosine(out, ref),
                                "relative_error": relative_error(out, ref)}
        if is_map(out.shape):
            item["primary"] = "mask_iou"
            item["mask_iou"] = mask_iou(out, ref)
        elif out.ndim >= 2 and out.shape[-1] >= 2 and np.issubdtype(out.dtype, np.floating):
            item["primary"] = "top1_agreement"
            item["top1_agreement"] = top1_agreement(out, ref)
        else:
            item["primary"] = "cosine"
        per_output.append(item)
    head = per_output[0]
    return {"metric": head["primary"], "score": head[head["primary"]], "outputs": per_output}


def _pair(out: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    out, ref = np.asarray(out), np.asarray(ref)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from the reference's {ref.shape}")
    return out, ref
