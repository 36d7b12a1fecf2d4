"""Turn raw user inputs (image files, .npy/.npz tensors) into feeds for an artifact."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.utils.errors import UserError


def load_inputs(artifact: Any, inputs: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """Return (feeds, one display name per sample)."""
    if not inputs:
        raise UserError("no inputs given.", "pass image files or .npy/.npz files after ARTIFACT.")
    manifest = artifact.manifest
    suffixes = {Path(i).suffix.lower() for i in inputs}
    if suffixes <= {".npy", ".npz"}:
        return _tensor_inputs(manifest, inputs)
    if manifest.preprocess.get("type") == "text":  # texts, .txt files (one per line) or -
        from paddleopt.text.preprocess import text_inputs

        return text_inputs(artifact, inputs)
    if manifest.preprocess.get("type") == "image":
        from paddleopt.data.preprocess import preprocess_images

        return [preprocess_images(inputs, manifest.preprocess)], list(inputs)
    raise UserError(f"artifact '{artifact.path}' records no image preprocessing, so raw "
                    f"inputs cannot be converted.", "pass ready tensors as .npy/.npz files.")


def _tensor_inputs(manifest: Any, inputs: list[str]) -> tuple[list[np.ndarray], list[str]]:
    specs = manifest.io.inputs
    arrays: list[np.ndarray] = []
    for path in inputs:
        if not Path(path).is_file():
            raise UserError(f"input '{path}' does not exist.", "check the path.")
        data = np.load(path)
        if isinstance(data, np.lib.npyio.NpzFile):
            missing = [s.name for s in specs if s.name not in data.files]
            if missing:
                raise UserError(f"'{path}' lacks inputs {missing} (has {data.files}).",
                                "save one array per model input, named as the model's inputs.")
            return [data[s.name].astype(s.dtype) for s in specs], \
                [f"{path}[{i}]" for i in range(len(data[specs[0].name]))]
        arrays.append(data)
    if len(specs) != 1:
        raise UserError(f"the model has {len(specs)} inputs; .npy holds one.",
                        "pass one .npz with an array per input name.")
    batch = np.concatenate([a if a.ndim == len(specs[0].shape) else a[None] for a in arrays])
    expected = specs[0].shape
    if len(batch.shape) != len(expected) or any(e not in (-1, g) for e, g in
                                                zip(expected, batch.shape)):
        raise UserError(f"input shape {list(batch.shape)} does not fit the model's "
                        f"{specs[0].name} {expected}.", "save arrays with that shape (-1: any).")
    names = [f"{p}" for p in inputs] if len(arrays) == len(batch) else \
        [f"sample{i}" for i in range(len(batch))]
    return [batch.astype(specs[0].dtype)], names
