"""Turn a /predict JSON body into model feeds, with 4xx errors that say what is wrong.

Accepted bodies (one of):

* ``{"inputs": {"x": [[...]]}}``: tensors by input name, first dimension = batch;
  ``{"inputs": [[...]]}`` is accepted for single-input models;
* ``{"images": ["<base64 PNG/JPEG>", ...]}``: for artifacts whose manifest ``preprocess`` is
  ``type: image`` (resized/normalized exactly as in training, ``paddleopt.data.preprocess``);
* ``{"texts": ["...", ...]}``: for ``type: text`` artifacts, through the text hook below.

Optional: ``"top_k": K`` adds class predictions with labels to the answer.
"""
from __future__ import annotations

import base64
import binascii
import importlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

# The text pipeline (paddleopt/text) provides this function; until it exists, text requests
# get a 501 that says so. Contract: texts_to_feeds(texts: list[str], preprocess: dict
# (the manifest's), inputs: list[TensorSpec]) -> list[np.ndarray] in io.inputs order, all with
# len(texts) rows (padded to the manifest's max_seq_len so that requests batch together).
TEXT_HOOK = "paddleopt.text.preprocess:texts_to_feeds"


class RequestError(Exception):
    """A client mistake: HTTP ``status`` with a message and a fix."""

    def __init__(self, status: int, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fix = fix

    def body(self) -> dict[str, Any]:
        out = {"error": self.message}
        if self.fix:
            out["fix"] = self.fix
        return out


@dataclass
class ParsedRequest:
    feeds: list[np.ndarray]
    rows: int
    top_k: int = 0


def parse_body(body: Any, manifest: Any, max_rows: int) -> ParsedRequest:
    """Validate a decoded JSON body against the served model's manifest."""
    if not isinstance(body, dict):
        raise RequestError(400, f"the body must be a JSON object, got {type(body).__name__}.",
                           'send {"inputs": {"<name>": [[...]]}}.')
    given = [k for k in ("inputs", "images", "texts") if k in body]
    unknown = sorted(set(body) - {"inputs", "images", "texts", "top_k"})
    if unknown:
        raise RequestError(422, f"unknown field(s) {unknown}.",
                           "use one of inputs / images / texts, and optionally top_k.")
    if len(given) != 1:
        raise RequestError(422, "the body needs exactly one of 'inputs', 'images' or 'texts'"
                           f" (got {given or 'none'}).", _expected(manifest))
    top_k = body.get("top_k", 0)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise RequestError(422, f"top_k must be a non-negative integer, got {top_k!r}.",
                           "use e.g. top_k: 3")
    if given[0] == "inputs":
        feeds = _tensor_feeds(body["inputs"], manifest)
    elif given[0] == "images":
        feeds = _image_feeds(body["images"], manifest, max_rows)
    else:
        feeds = _text_feeds(body["texts"], manifest, max_rows)
    rows = int(feeds[0].shape[0])
    if rows < 1:
        raise RequestError(422, "the request holds no samples (batch dimension 0).",
                           "send at least one sample.")
    if rows > max_rows:
        raise RequestError(413, f"the request holds {rows} samples; this server accepts at "
                           f"most {max_rows} per request.", "split it into smaller requests.")
    return ParsedRequest(feeds, rows, top_k)


def _expected(manifest: Any) -> str:
    specs = ", ".join(f"'{s.name}' {s.shape} {s.dtype}" for s in manifest.io.inputs)
    kind = manifest.preprocess.get("type")
    extra = {"image": ', or {"images": ["<base64 PNG/JPEG>"]}',
             "text": ', or {"texts": ["..."]}'}.get(kind, "")
    return f'send {{"inputs": {{name: nested list}}}} with inputs {specs}{extra}.'


def _tensor_feeds(value: Any, manifest: Any) -> list[np.ndarray]:
    specs = manifest.io.inputs
    if isinstance(value, list) and len(specs) == 1:
        value = {specs[0].name: value}
    if not isinstance(value, dict):
        raise RequestError(422, "'inputs' must map input names to nested lists.",
                           _expected(manifest))
    names = [s.name for s in specs]
    missing = [n for n in names if n not in value]
    extra = [n for n in value if n not in names]
    if missing or extra:
        raise RequestError(422, f"inputs do not match the model: missing {missing}, unknown "
                           f"{extra}.", _expected(manifest))
    feeds = []
    for spec in specs:
        try:
            arr = np.asarray(value[spec.name], dtype=spec.dtype)
        except (ValueError, TypeError) as exc:
            raise RequestError(422, f"input '{spec.name}' is not a rectangular array of "
                               f"numbers ({_first(exc)}).",
                               f"send a nested list of numbers with shape {spec.shape}.") \
                from None
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise RequestError(422, f"input '{spec.name}' holds null, NaN or Infinity.",
                               "send finite numbers only.")
        _check_shape(arr, spec)
        feeds.append(arr)
    if len({f.shape[0] for f in feeds}) > 1:
        raise RequestError(422, f"inputs have different batch sizes "
                           f"{[f.shape[0] for f in feeds]}.",
                           "give every input the same first dimension.")
    return feeds


def _check_shape(arr: np.ndarray, spec: Any) -> None:
    expected = list(spec.shape)
    ok = arr.ndim == len(expected) and all(e in (-1, g) for e, g in zip(expected, arr.shape))
    if not ok:
        raise RequestError(422, f"input '{spec.name}' has shape {list(arr.shape)}, the model "
                           f"takes {expected} (-1: any size).",
                           "reshape it; the first dimension is the batch (wrap a single "
                           "sample in a list).")


def _image_feeds(value: Any, manifest: Any, max_rows: int) -> list[np.ndarray]:
    if manifest.preprocess.get("type") != "image":
        raise RequestError(422, "this model records no image preprocessing; 'images' cannot "
                           "be converted.", _expected(manifest))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(422, "'images' must be a list of base64 strings.",
                           'send {"images": ["iVBORw0KGgo..."]}.')
    if len(value) > max_rows:
        raise RequestError(413, f"{len(value)} images in one request; at most {max_rows}.",
                           "split it into smaller requests.")
    if len(manifest.io.inputs) != 1:
        raise RequestError(422, "image requests need a single-input model.", _expected(manifest))
    from PIL import Image, UnidentifiedImageError

    from paddleopt.config.schema import parse
    from paddleopt.data.preprocess import ImagePreprocess, load_image, normalize

    spec = parse(ImagePreprocess, manifest.preprocess, path="manifest.preprocess")
    arrays = []
    for i, text in enumerate(value):
        if "," in text[:64] and text.startswith("data:"):
            text = text.split(",", 1)[1]  # data URL
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(422, f"images[{i}] is not valid base64.",
                               "base64-encode the image file's bytes.") from None
        try:
            with Image.open(io.BytesIO(raw)) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise RequestError(422, f"images[{i}] is not a readable image.",
                               "send PNG or JPEG bytes.") from None
        arrays.append(load_image(io.BytesIO(raw), spec))
    return [normalize(np.stack(arrays), spec).astype(manifest.io.inputs[0].dtype)]


def _text_feeds(value: Any, manifest: Any, max_rows: int) -> list[np.ndarray]:
    if manifest.preprocess.get("type") != "text":
        raise RequestError(422, "this model records no text preprocessing; 'texts' cannot be "
                           "converted.", _expected(manifest))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(422, "'texts' must be a list of strings.", 'send {"texts": ["..."]}')
    if len(value) > max_rows:
        raise RequestError(413, f"{len(value)} texts in one request; at most {max_rows}.",
                           "split it into smaller requests.")
    module_name, fn_name = TEXT_HOOK.split(":")
    try:
        fn = getattr(importlib.import_module(module_name), fn_name)
    except (ImportError, AttributeError):
        raise RequestError(501, "text preprocessing is not available in this installation "
                           f"({TEXT_HOOK} is missing).",
                           'send token ids as tensors: {"inputs": {...}}.') from None
    try:
        feeds = [np.asarray(f) for f in fn(value, manifest.preprocess, manifest.io.inputs)]
    except Exception as exc:
        message = getattr(exc, "message", None) or _first(exc)
        raise RequestError(422, f"text preprocessing failed: {message}",
                           getattr(exc, "fix", "") or "check the texts.") from None
    return feeds


def _first(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def predictions(output: np.ndarray, labels: list[str], top_k: int) -> list[list[dict]]:
    """Top-k classes with softmax scores per row of a [N, classes] output."""
    logits = np.asarray(output, dtype=np.float64)
    if logits.ndim != 2:
        return []
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    out = []
    for row in probs:
        order = np.argsort(-row)[:top_k]
        out.append([{"class_id": int(i), "label": labels[i] if i < len(labels) else str(int(i)),
                     "score": float(row[i])} for i in order])
    return out
