"""Turn raw user inputs (image files, .npy/.npz tensors) into feeds for an artifact."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.utils.errors import UserError


def name_mismatch(names: Iterable[str], specs: list[Any]) -> tuple[list[str], list[str]]:
    """(model inputs missing from ``names``, names the model does not take)."""
    names = list(names)
    wanted = [s.name for s in specs]
    return [n for n in wanted if n not in names], [n for n in names if n not in wanted]


def shape_fits(shape: Sequence[int], expected: Sequence[int]) -> bool:
    """``shape`` has the rank of ``expected`` and matches it where that is not -1."""
    return len(shape) == len(expected) and all(e in (-1, g) for e, g in zip(expected, shape))


def load_inputs(artifact: Any, inputs: list[str], preprocess: dict[str, Any] | None = None,
                warn: Any = None) -> tuple[list[np.ndarray], list[str]]:
    """Return (feeds, one display name per sample). ``preprocess`` overrides entries of the
    manifest's image preprocessing (invert, size, mean, std, ...); ``warn(line)`` receives one
    line per image whose brightness is unlike the training images'."""
    if not inputs:
        raise UserError("no inputs given.", "pass image files or .npy/.npz files after ARTIFACT.")
    manifest = artifact.manifest
    suffixes = {Path(i).suffix.lower() for i in inputs}
    if suffixes <= {".npy", ".npz"}:
        if preprocess:
            raise UserError(f"preprocessing overrides ({', '.join(sorted(preprocess))}) apply "
                            f"to image files; .npy/.npz inputs are fed as they are.",
                            "save the tensors already preprocessed (normalized, the model's "
                            "size and layout), or pass image files.")
        return _tensor_inputs(manifest, inputs)
    if manifest.preprocess.get("type") == "text":  # texts, .txt files (one per line) or -
        from paddleopt.text.preprocess import text_inputs

        return text_inputs(artifact, inputs)
    if manifest.preprocess.get("type") == "image":
        return _image_inputs(manifest, inputs, preprocess or {}, warn)
    raise UserError(f"artifact '{artifact.path}' records no image preprocessing, so raw "
                    f"inputs cannot be converted.", "pass ready tensors as .npy/.npz files.")


def _image_inputs(manifest: Any, inputs: list[str], overrides: dict[str, Any],
                  warn: Any) -> tuple[list[np.ndarray], list[str]]:
    from paddleopt.config.schema import parse
    from paddleopt.data.preprocess import (ImagePreprocess, brightness_warnings, load_images,
                                           normalize)

    spec = parse(ImagePreprocess, {**manifest.preprocess, **overrides},
                 path="preprocess overrides" if overrides else "manifest.preprocess")
    problem = spec.validate()
    if problem:
        raise UserError(*problem)
    raw = load_images(inputs, spec)
    if warn is not None:
        for line in brightness_warnings(raw, list(inputs), manifest.dataset.get("brightness"),
                                        spec.invert):
            warn(line)
    return [normalize(raw, spec)], list(inputs)


def _tensor_inputs(manifest: Any, inputs: list[str]) -> tuple[list[np.ndarray], list[str]]:
    specs = manifest.io.inputs
    arrays: list[np.ndarray] = []
    for path in inputs:
        data = _load_array_file(path)
        if isinstance(data, dict):
            missing, _ = name_mismatch(data, specs)
            if missing:
                raise UserError(f"'{path}' lacks inputs {missing} (has {sorted(data)}).",
                                "save one array per model input, named as the model's inputs.")
            feeds = [checked_tensor(data[s.name], s, f"{path}[{s.name}]") for s in specs]
            return feeds, [f"{path}[{i}]" for i in range(len(feeds[0]))]
        arrays.append(data)
    if len(specs) != 1:
        raise UserError(f"the model has {len(specs)} inputs; .npy holds one.",
                        "pass one .npz with an array per input name.")
    spec = specs[0]
    arrays = [checked_tensor(a if a.ndim == len(spec.shape) else a[None], spec, path,
                             check_shape=False) for a, path in zip(arrays, inputs)]
    try:
        batch = np.concatenate(arrays)
    except ValueError as exc:
        raise UserError(f"the .npy inputs do not stack into one batch ({exc}).",
                        "give every file the same sample shape.") from None
    batch = checked_tensor(batch, spec, "the stacked .npy inputs")
    names = [f"{p}" for p in inputs] if len(arrays) == len(batch) else \
        [f"sample{i}" for i in range(len(batch))]
    return [batch], names


def _load_array_file(path: str) -> np.ndarray | dict[str, np.ndarray]:
    """np.load without pickles; every failure becomes a UserError naming the file."""
    if not Path(path).is_file():
        raise UserError(f"input '{path}' does not exist or is not a file.", "check the path.")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                return {name: data[name] for name in data.files}
        return data
    except Exception as exc:  # ValueError (object arrays, bad header), EOFError, BadZipFile
        raise UserError(f"'{path}' is not a readable numeric .npy/.npz file "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).",
                        "save plain numeric arrays with numpy.save / numpy.savez (object "
                        "arrays and pickles are refused).") from None


def checked_tensor(arr: np.ndarray, spec: Any, where: str,
                   check_shape: bool = True) -> np.ndarray:
    """``arr`` cast to ``spec.dtype`` after refusing what the model cannot mean: non-numeric
    dtypes (object, complex, strings; bool unless the model takes bool), casts that change
    the kind of number (float -> int), NaN/Inf, no samples and (``check_shape``) shapes that
    do not fit ``spec.shape``. The one check of every tensor a user hands in (CLI files,
    server requests: the server maps the UserError to HTTP 422)."""
    arr = np.asarray(arr)
    target = np.dtype(spec.dtype)
    if arr.dtype.kind not in "iuf" and arr.dtype != target:
        raise UserError(f"{where}: dtype {arr.dtype} is not a real number type; the model's "
                        f"input '{spec.name}' takes {spec.dtype}.",
                        f"pass {spec.dtype} values (not bool, complex, strings or objects).")
    if arr.dtype != target:
        if not np.can_cast(arr.dtype, target, casting="same_kind"):
            raise UserError(f"{where}: dtype {arr.dtype} cannot become {spec.dtype} (input "
                            f"'{spec.name}') without changing the kind of number.",
                            f"pass {spec.dtype} values.")
        arr = arr.astype(target)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise UserError(f"{where}: input '{spec.name}' holds NaN or Inf.",
                        "pass finite numbers only.")
    if arr.ndim and arr.shape[0] == 0:
        raise UserError(f"{where}: holds no samples (shape {list(arr.shape)}).",
                        "pass at least one sample.")
    expected = list(spec.shape)
    if check_shape and not shape_fits(arr.shape, expected):
        raise UserError(f"{where} has shape {list(arr.shape)}, the model takes {expected} "
                        f"(-1: any size): it does not fit input '{spec.name}'.",
                        "reshape it; the first dimension is the batch (wrap a single sample "
                        "in a list).")
    return arr
