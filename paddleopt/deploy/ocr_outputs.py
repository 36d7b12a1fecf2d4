"""`paddleopt infer` answers for OCR-style outputs instead of class-style top-k.

- ``[N, T, C]`` scores (a CTC recogniser, e.g. PP-OCR rec): the greedy-decoded text per input
  and its confidence (mean best score over the kept steps), when the characters are known:
  ``--dict KEYS.txt`` (PaddleOCR's keys file) or the ``PostProcess.character_dict`` of the
  folder's PaddleOCR ``inference.yml``; without them the decoded class ids and the fix;
- ``[N, 1, H, W]`` probability maps (a DB text detector, e.g. PP-OCR det): the text boxes
  (``paddleopt.metrics.textdet.db_boxes``) in the model's input pixels, and the map's share
  above the threshold.
Anything else stays a classifier's top-k (``paddleopt.deploy.outputs``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.utils.errors import UserError


def kind_of(output: np.ndarray) -> str:
    """"ctc", "map" or "classes" for the first output's shape."""
    from paddleopt.metrics.agreement import is_map

    if output.ndim == 3 and output.shape[-1] >= 2 and output.dtype.kind == "f":
        return "ctc"
    if is_map(output.shape):
        return "map"
    return "classes"


def charset_for(classes: int, keys: list[str]) -> list[str]:
    """PaddleOCR's CTC characters for a model scoring ``classes``: blank, the keys, then a
    space when the model has one more class (``use_space_char``)."""
    if classes == len(keys) + 1:
        return ["<blank>", *keys]
    if classes == len(keys) + 2:
        return ["<blank>", *keys, " "]
    raise UserError(f"the character dictionary has {len(keys)} characters but the model "
                    f"scores {classes} classes (expected {len(keys) + 1} or {len(keys) + 2}: "
                    f"blank + characters (+ space)).",
                    "pass the keys file the model was trained with (--dict).")


def read_keys(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the character dictionary '{path}': {exc}",
                        "pass PaddleOCR's keys file, one character per line.") from None


def ctc_answers(scores: np.ndarray, charset: list[str] | None) -> list[dict[str, Any]]:
    from paddleopt.metrics.ocr import ctc_kept

    out = []
    for row in np.asarray(scores):
        ids = row.argmax(-1)
        keep = ctc_kept(ids)
        conf = float(row.max(-1)[keep].mean()) if keep.any() else 0.0
        answer: dict[str, Any] = {"confidence": round(conf, 4)}
        if charset is not None:
            answer["text"] = "".join(charset[i] for i in ids[keep])
        else:
            answer["ids"] = [int(i) for i in ids[keep]]
        out.append(answer)
    return out


def map_answers(maps: np.ndarray, thresh: float = 0.3) -> list[dict[str, Any]]:
    from paddleopt.metrics.textdet import db_boxes

    out = []
    for m in np.asarray(maps):
        boxes = db_boxes(m, thresh=thresh)
        out.append({"boxes": [{"box": list(box), "score": round(score, 4)}
                              for box, score in boxes],
                    "map_shape": list(m.shape[-2:]),
                    "text_share": round(float((m > thresh).mean()), 4)})
    return out


def describe(answer: dict[str, Any]) -> str:
    """One line (or a few) for the CLI."""
    if "text" in answer:
        return f"{answer['text']!r} (confidence {answer['confidence']:.3f})"
    if "ids" in answer:
        return (f"CTC class ids {answer['ids']} (confidence {answer['confidence']:.3f}); "
                f"pass --dict KEYS.txt to read them as text")
    if "boxes" in answer:
        h, w = answer["map_shape"]
        head = (f"{len(answer['boxes'])} text boxes (x0, y0, x1, y1 in the {h}x{w} input; "
                f"{answer['text_share']:.1%} of the map above 0.3)")
        return "\n".join([head, *(f"    {tuple(b['box'])} score {b['score']:.3f}"
                                  for b in answer["boxes"])])
    return ", ".join(f"{p['label']} ({p['score']:.3f})" for p in answer["predictions"])
