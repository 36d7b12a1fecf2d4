"""Turn a /predict JSON body into model feeds, with 4xx errors that say what is wrong.

Accepted bodies (one of):

* ``{"inputs": {"x": [[...]]}}``: tensors by input name, first dimension = batch;
  ``{"inputs": [[...]]}`` is accepted for single-input models;
* ``{"images": ["<base64 PNG/JPEG>", ...]}``: for artifacts whose manifest ``preprocess`` is
  ``type: image`` (resized/normalized exactly as in training, ``paddleopt.data.preprocess``);
* ``{"texts": ["...", ...]}``: for ``type: text`` artifacts, through the text hook below.

Optional: ``"top_k": K`` adds class predictions with labels to the answer.

Binary bodies skip JSON's float parsing (``parse_binary``; JSON costs 0.6-0.85 ms more server
CPU for 784 floats, ~12 ms for one 3x96x96 image), selected by Content-Type:

* ``application/x-npy``: one ``numpy.save`` array (single-input models);
* ``application/x-npz``: ``numpy.savez`` arrays named like the model's inputs;
* ``application/octet-stream``: raw C-order bytes with ``X-Shape: 1,1,28,28`` and optionally
  ``X-Dtype: float32`` (default: the input's dtype; single-input models).

A dtype that cannot be converted without changing kind (e.g. float to int) is refused; float64
is converted to a float32 input. ``?top_k=K`` works as the JSON field does.
"""
from __future__ import annotations

import ast
import base64
import binascii
import functools
import importlib
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from paddleopt.deploy.inputs import checked_tensor, name_mismatch
from paddleopt.deploy.outputs import top_k_classes
from paddleopt.utils.errors import UserError

# The text pipeline (paddleopt/text) provides this function; until it exists, text requests
# get a 501 that says so. Contract: texts_to_feeds(texts: list[str], preprocess: dict
# (the manifest's), inputs: list[TensorSpec]) -> list[np.ndarray] in io.inputs order, all with
# len(texts) rows (padded to the manifest's max_seq_len so that requests batch together).
TEXT_HOOK = "paddleopt.text.preprocess:texts_to_feeds"

# Largest image decoded (width x height): a 1 MB PNG can declare 30000x30000 pixels and
# decode to 2.7 GB. 40 MP covers photos from any camera; models take far fewer.
MAX_IMAGE_PIXELS = 40_000_000

# A decoded .npz may hold this many times the body limit (compressed tensors are smaller
# than their arrays; a "zip bomb" is 1000x smaller). Checked from the archive's declared
# sizes and .npy headers before anything is decompressed.
NPZ_EXPANSION = 4


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


def parse_body(body: Any, manifest: Any, max_rows: int, booleans: bool = True) -> ParsedRequest:
    """Validate a decoded JSON body against the served model's manifest. ``booleans``: the
    body may hold true/false (the caller saw those words in the raw bytes); False skips the
    walk that refuses them."""
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
    check_top_k(top_k, manifest)
    if given[0] == "inputs":
        feeds = _tensor_feeds(body["inputs"], manifest, booleans)
    elif given[0] == "images":
        feeds = _image_feeds(body["images"], manifest, max_rows)
    else:
        feeds = _text_feeds(body["texts"], manifest, max_rows)
    return ParsedRequest(feeds, _checked_rows(feeds, max_rows), top_k)


def _checked_rows(feeds: list[np.ndarray], max_rows: int) -> int:
    """The request's sample count: at least 1 and at most ``max_rows`` (else 422 / 413)."""
    rows = int(feeds[0].shape[0])
    if rows < 1:
        raise RequestError(422, "the request holds no samples (batch dimension 0).",
                           "send at least one sample.")
    if rows > max_rows:
        raise RequestError(413, f"the request holds {rows} samples; this server accepts at "
                           f"most {max_rows} per request.", "split it into smaller requests.")
    return rows


def _expected(manifest: Any) -> str:
    specs = ", ".join(f"'{s.name}' {s.shape} {s.dtype}" for s in manifest.io.inputs)
    kind = manifest.preprocess.get("type")
    extra = {"image": ', or {"images": ["<base64 PNG/JPEG>"]}',
             "text": ', or {"texts": ["..."]}'}.get(kind, "")
    return f'send {{"inputs": {{name: nested list}}}} with inputs {specs}{extra}.'


def _tensor_feeds(value: Any, manifest: Any, booleans: bool = True) -> list[np.ndarray]:
    specs = manifest.io.inputs
    if isinstance(value, list) and len(specs) == 1:
        value = {specs[0].name: value}
    if not isinstance(value, dict):
        raise RequestError(422, "'inputs' must map input names to nested lists.",
                           _expected(manifest))
    missing, extra = name_mismatch(value, specs)
    if missing or extra:
        raise RequestError(422, f"inputs do not match the model: missing {missing}, unknown "
                           f"{extra}.", _expected(manifest))
    feeds = []
    for spec in specs:
        if booleans and np.dtype(spec.dtype).kind != "b" and _holds_bool(value[spec.name]):
            raise RequestError(422, f"input '{spec.name}' holds true/false; the model takes "
                               f"{spec.dtype} numbers.", "send numbers, e.g. 1 / 0.")
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
        feeds.append(_checked(arr, spec))
    if len({f.shape[0] for f in feeds}) > 1:
        raise RequestError(422, f"inputs have different batch sizes "
                           f"{[f.shape[0] for f in feeds]}.",
                           "give every input the same first dimension.")
    return feeds


def _holds_bool(value: Any) -> bool:
    """True when a decoded JSON tensor contains a boolean anywhere (numpy would silently turn
    it into 1.0 / 0.0). Iterative: the nesting depth is the client's choice."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            return True
        if isinstance(item, list):
            stack.extend(item)
    return False


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
                pixels = img.size[0] * img.size[1]
                if pixels > MAX_IMAGE_PIXELS:
                    raise _too_many_pixels(i, img.size)
                img.verify()
        except Image.DecompressionBombError:  # PIL's own limit (2x its MAX_IMAGE_PIXELS)
            raise _too_many_pixels(i, None) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise RequestError(422, f"images[{i}] is not a readable image.",
                               "send PNG or JPEG bytes.") from None
        arrays.append(load_image(io.BytesIO(raw), spec))
    return [normalize(np.stack(arrays), spec).astype(manifest.io.inputs[0].dtype)]


def _too_many_pixels(index: int, size: tuple[int, int] | None) -> RequestError:
    what = f"{size[0]}x{size[1]} pixels" if size else "more pixels than PIL decodes"
    return RequestError(413, f"images[{index}] has {what}; this server decodes at most "
                        f"{MAX_IMAGE_PIXELS:,} pixels per image.",
                        "resize the image before sending it (the model sees it resized "
                        "anyway).")


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


def decode_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON ({exc}).",
                           "send a JSON object with Content-Type: application/json.") from None
    except RecursionError:  # [[[[... nested deeper than the interpreter's stack
        raise RequestError(400, "the JSON body is nested too deeply.",
                           "send tensors as nested lists no deeper than their rank.") from None


def _first(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_top_k(top_k: int, manifest: Any) -> None:
    """Refuse a top_k larger than the class count the manifest declares (422, not a silent
    clamp); outputs of unknown width are checked in ``predictions``."""
    outputs = manifest.io.outputs
    classes = outputs[0].shape[-1] if outputs and outputs[0].shape else -1
    if top_k and classes > 0 and top_k > classes:
        raise _top_k_error(top_k, classes)


def _top_k_error(top_k: int, classes: int) -> RequestError:
    return RequestError(422, f"top_k={top_k}, but the model has {classes} classes.",
                        f"ask for top_k between 1 and {classes}.")


def predictions(output: np.ndarray, labels: list[str], top_k: int) -> list[list[dict]]:
    """Top-k classes with softmax scores per row of a [N, classes] output."""
    logits = np.asarray(output, dtype=np.float64)
    if logits.ndim != 2:
        raise RequestError(422, f"top_k needs a [batch, classes] output; this model's first "
                           f"output has shape {list(logits.shape)}.",
                           "drop top_k and read 'outputs'.")
    if top_k > logits.shape[1]:
        raise _top_k_error(top_k, logits.shape[1])
    return top_k_classes(logits, labels, top_k)


BINARY_TYPES = ("application/x-npy", "application/x-npz", "application/octet-stream")


def parse_binary(content_type: str, data: bytes, headers: Any, manifest: Any, max_rows: int,
                 top_k: int = 0, max_bytes: int | None = None) -> ParsedRequest:
    """Validate a binary body (see the module docstring) against the served model.
    ``max_bytes``: the most array bytes an .npz may decompress to (default: NPZ_EXPANSION x
    the body's size, at least 1 MB)."""
    specs = manifest.io.inputs
    check_top_k(top_k, manifest)
    if content_type == "application/x-npz":
        arrays = _load_npz(data, max_bytes or max(NPZ_EXPANSION * len(data), 1 << 20),
                           max_rows)
        return check_arrays(arrays, manifest, max_rows, top_k, "the .npz arrays")
    if len(specs) != 1:
        raise RequestError(422, f"{content_type} carries one array, but the model has "
                           f"{len(specs)} inputs ({', '.join(s.name for s in specs)}).",
                           "send application/x-npz with one array per input name.")
    if content_type == "application/x-npy":
        arr = _load_npy(data)
    else:
        arr = _raw_array(data, headers, specs[0])
    return check_arrays({specs[0].name: arr}, manifest, max_rows, top_k)


def check_arrays(arrays: dict[str, np.ndarray], manifest: Any, max_rows: int, top_k: int = 0,
                 what: str = "the inputs") -> ParsedRequest:
    """Arrays by input name (an .npz, a v2 infer request) checked like every other body."""
    missing, extra = name_mismatch(arrays, manifest.io.inputs)
    if missing or extra:
        raise RequestError(422, f"{what} do not match the model's inputs: missing "
                           f"{missing}, unknown {extra}.", _expected_binary(manifest))
    feeds = [_checked(arrays[s.name], s) for s in manifest.io.inputs]
    if len({f.shape[0] for f in feeds}) > 1:
        raise RequestError(422, f"inputs have different batch sizes "
                           f"{[f.shape[0] for f in feeds]}.",
                           "give every input the same first dimension.")
    return ParsedRequest(feeds, _checked_rows(feeds, max_rows), top_k)


def _expected_binary(manifest: Any) -> str:
    specs = ", ".join(f"'{s.name}' {s.shape} {s.dtype}" for s in manifest.io.inputs)
    return f"the model takes {specs} (-1: any size)."


_NPY_MAGIC = b"\x93NUMPY"


@functools.lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool] | None:
    """dtype, shape and order of a .npy header (numpy parses it with ast.literal_eval on
    every np.load: ~0.2 ms, as much as the rest of a request; a server sees the same few
    headers again and again)."""
    try:
        fields = ast.literal_eval(header.decode("latin-1"))
        dtype = np.dtype(fields["descr"])
        shape = tuple(int(d) for d in fields["shape"])
        return dtype, shape, bool(fields["fortran_order"])
    except Exception:
        return None


def _fast_npy(data: bytes) -> np.ndarray | None:
    """A plain (non-object) .npy array without np.load's per-call header parsing, or None
    to let np.load decide (and produce its error message)."""
    if len(data) < 10 or not data.startswith(_NPY_MAGIC) or data[6] not in (1, 2, 3):
        return None
    if data[6] == 1:
        size, start = int.from_bytes(data[8:10], "little"), 10
    else:
        size, start = int.from_bytes(data[8:12], "little"), 12
    parsed = _npy_header(bytes(data[start:start + size]))
    if parsed is None:
        return None
    dtype, shape, fortran = parsed
    if dtype.hasobject or len(data) != start + size + int(np.prod(shape)) * dtype.itemsize:
        return None
    arr = np.frombuffer(data, dtype=dtype, offset=start + size)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def _load_npy(data: bytes) -> np.ndarray:
    arr = _fast_npy(data)
    if arr is not None:
        return arr
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # ValueError: not .npy / object arrays; EOFError: cut short
        raise RequestError(400, f"the body is not a readable .npy array ({_first(exc)}).",
                           "send the bytes written by numpy.save(file, array).") from None
    if not isinstance(arr, np.ndarray):
        raise RequestError(400, "the body is an .npz archive, not one .npy array.",
                           "send it as Content-Type: application/x-npz.")
    return arr


def _load_npz(data: bytes, max_bytes: int, max_rows: int) -> dict[str, np.ndarray]:
    """The arrays of an .npz body, refusing (413) archives whose declared shapes x dtypes
    exceed ``max_bytes`` or ``max_rows`` *before* decompressing anything: np.load would
    allocate whatever a 1 MB archive of zeros declares (1 GB and 6 s, measured)."""
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise _bad_npz(exc) from None
    with archive:
        members = archive.infolist()
        if len(members) > 64:
            raise RequestError(413, f"the .npz holds {len(members)} arrays.",
                               "send one array per model input.")
        arrays, total = {}, 0
        for info in members:
            try:
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
                    if dtype.hasobject:
                        raise ValueError("object arrays are not accepted")
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    total += nbytes
                    if total > max_bytes:
                        raise RequestError(413, f"the .npz arrays declare {total:,} bytes; "
                                           f"this server decodes at most {max_bytes:,} per "
                                           "request.", "send fewer samples per request.")
                    if shape and shape[0] > max_rows:
                        raise RequestError(413, f"array '{info.filename}' declares {shape[0]}"
                                           f" samples; this server accepts at most "
                                           f"{max_rows} per request.",
                                           "split it into smaller requests.")
                    raw = member.read(nbytes)
                    if len(raw) != nbytes:
                        raise ValueError(f"array '{info.filename}' is cut short")
            except RequestError:
                raise
            except Exception as exc:  # bad zip member, bad header, CRC error, cut short
                raise _bad_npz(exc) from None
            arr = np.frombuffer(raw, dtype=dtype)
            arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            arrays[name] = arr
    return arrays


def _bad_npz(exc: BaseException) -> RequestError:
    return RequestError(400, f"the body is not a readable .npz archive ({_first(exc)}).",
                        "send the bytes written by numpy.savez(file, x=array, ...).")


def _raw_array(data: bytes, headers: Any, spec: Any) -> np.ndarray:
    shape_text = headers.get("x-shape")
    if not shape_text:
        raise RequestError(422, "application/octet-stream needs an X-Shape header.",
                           f"add e.g. 'X-Shape: {','.join(str(max(d, 1)) for d in spec.shape)}'"
                           f" (the model takes {spec.shape}).")
    try:
        shape = [int(d) for d in shape_text.strip().strip("[]()").split(",") if d.strip()]
        if any(d < 0 for d in shape):
            raise ValueError
    except ValueError:
        raise RequestError(422, f"X-Shape {shape_text!r} is not a list of non-negative "
                           "integers.", "send e.g. 'X-Shape: 1,1,28,28'.") from None
    dtype_text = headers.get("x-dtype") or spec.dtype
    try:
        dtype = np.dtype(dtype_text)
    except TypeError:
        raise RequestError(422, f"X-Dtype {dtype_text!r} is not a numpy dtype.",
                           f"send e.g. 'X-Dtype: {spec.dtype}'.") from None
    if dtype.kind not in "iuf" and dtype != np.dtype(spec.dtype):
        raise RequestError(422, f"X-Dtype {dtype_text!r} is not numeric.",
                           f"send e.g. 'X-Dtype: {spec.dtype}'.")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise RequestError(422, f"the body has {len(data)} bytes; X-Shape {shape} of "
                           f"{dtype.name} needs {expected}.",
                           "send exactly the array's bytes (array.tobytes(), C order), or fix "
                           "X-Shape / X-Dtype.")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _checked(arr: np.ndarray, spec: Any) -> np.ndarray:
    """The CLI's tensor check (``deploy.inputs.checked_tensor``), its UserError as a 422."""
    try:
        return checked_tensor(arr, spec, f"input '{spec.name}'")
    except UserError as exc:
        raise RequestError(422, exc.message, exc.fix) from None
