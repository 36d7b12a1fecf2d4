"""Image preprocessing declared in config and recorded in the manifest.

The same spec turns dataset arrays (already scaled to [0, 1]) and raw image files into model
inputs, so ``paddleopt infer ARTIFACT examples/inputs/mnist_7.png`` sees what training saw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paddleopt.config.schema import parse, to_dict
from paddleopt.utils.errors import UserError


@dataclass
class ImagePreprocess:
    type: Literal["image"] = "image"
    size: list[int] = field(default_factory=lambda: [28, 28])  # [height, width]
    channels: Literal[1, 3] = 1  # 1: grayscale, 3: RGB
    mean: list[float] = field(default_factory=lambda: [0.0])  # after scaling to [0, 1]
    std: list[float] = field(default_factory=lambda: [1.0])
    resize: Literal["bilinear", "nearest", "bicubic"] = "bilinear"
    invert: bool = False  # white digits on black (MNIST) vs black ink on white paper
    # PaddleClas style: resize the short side to this, then center-crop to ``size``.
    resize_short: int | None = None

    def validate(self) -> tuple[str, str] | None:
        if len(self.size) != 2 or min(self.size) < 1:
            return "preprocess.size must be [height, width]", "use e.g. size: [28, 28]"
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                return (f"preprocess.{name} needs 1 or {self.channels} values",
                        f"give one value per channel, e.g. {name}: [0.5]")
        if any(s <= 0 for s in self.std):
            return "preprocess.std values must be > 0", "use e.g. std: [0.3081]"
        return None


DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "mnist": {"size": [28, 28], "channels": 1, "mean": [0.1307], "std": [0.3081]},
    "digits": {"size": [8, 8], "channels": 1, "mean": [0.3], "std": [0.4]},
}


def image_preprocess(dataset: str, declared: dict[str, Any], path: str = "data.preprocess"
                     ) -> ImagePreprocess:
    """Dataset defaults overlaid with what the config declares, validated."""
    merged = {**DATASET_DEFAULTS.get(dataset, {}), **(declared or {})}
    return parse(ImagePreprocess, merged, path=path)


def normalize(batch: np.ndarray, spec: ImagePreprocess) -> np.ndarray:
    """[N, C, H, W] in [0, 1] -> normalized float32."""
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(1, -1, 1, 1)
    return ((batch - mean) / std).astype(np.float32)


def load_image(path: str | Path, spec: ImagePreprocess) -> np.ndarray:
    """Read an image file -> [C, H, W] float32 in [0, 1], resized to ``spec.size``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if spec.channels == 1 else "RGB")
            resample = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
                        "bicubic": Image.BICUBIC}[spec.resize]
            if spec.resize_short:
                img = _resize_short_crop(img, spec, resample)
            else:
                img = img.resize((spec.size[1], spec.size[0]), resample)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise UserError(f"image '{path}' does not exist.", "check the path.") from None
    except Image.DecompressionBombError as exc:
        # PIL refuses images over 2x MAX_IMAGE_PIXELS (~179M) before decoding them.
        raise UserError(f"'{path}' is too large to decode safely ({exc}).",
                        "resize the image first (the model takes "
                        f"{spec.size[0]}x{spec.size[1]}).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"'{path}' is not a readable image ({exc}).",
                        "pass PNG/JPEG files.") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return 1.0 - arr if spec.invert else arr


def _resize_short_crop(img: Any, spec: ImagePreprocess, resample: Any) -> Any:
    scale = spec.resize_short / min(img.size)
    w, h = max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))
    img = img.resize((w, h), resample)
    ch, cw = spec.size
    left, top = max(0, (w - cw) // 2), max(0, (h - ch) // 2)
    img = img.crop((left, top, left + cw, top + ch))
    return img


def preprocess_images(paths: list[str | Path], spec_dict: dict[str, Any]) -> np.ndarray:
    """Image files -> one normalized batch, using the spec stored in a manifest."""
    spec = parse(ImagePreprocess, spec_dict, path="manifest.preprocess")
    return normalize(load_images(paths, spec), spec)


def load_images(paths: list[str | Path], spec: ImagePreprocess) -> np.ndarray:
    """Image files -> [N, C, H, W] in [0, 1] (inverted if the spec says so), not normalized."""
    return np.stack([load_image(p, spec) for p in paths])


def spec_dict(spec: ImagePreprocess) -> dict[str, Any]:
    return to_dict(spec)


def brightness_stats(images: Any, limit: int = 2000) -> dict[str, float] | None:
    """Mean and spread of the per-sample mean pixel ([0, 1] scale, before normalization) of
    up to ``limit`` training images: what ``infer`` compares a user's image with to notice
    e.g. a black-on-white digit fed to a model trained on white-on-black MNIST."""
    if not isinstance(images, np.ndarray) or images.ndim < 3 or not len(images):
        return None  # image-folder splits (paths) are not read just for this
    per_sample = images[:limit].reshape(min(limit, len(images)), -1).mean(axis=1)
    return {"mean": round(float(per_sample.mean()), 5), "std": round(float(per_sample.std()), 5),
            "samples": int(len(per_sample))}


def brightness_warnings(raw: np.ndarray, names: list[str], stats: dict[str, float] | None,
                        invert: bool) -> list[str]:
    """One line per input whose mean pixel lies far outside the training images' (more than
    5 standard deviations, and at least 0.1 away); says when inverting would fit."""
    if not stats:
        return []
    mu, sd = stats["mean"], stats["std"]
    tolerance = max(5 * sd, 0.1)
    out = []
    for name, sample in zip(names, raw):
        m = float(sample.mean())
        if abs(m - mu) <= tolerance:
            continue
        hint = (f"it looks inverted: pass --invert{' off' if invert else ''} "
                f"(--invert flips light and dark)" if abs((1 - m) - mu) <= tolerance
                else "check its size, crop and polarity (--invert, --size, --mean/--std)")
        out.append(f"{name}: mean pixel {m:.3f} is unlike the training images' "
                   f"{mu:.3f} +- {sd:.3f}; the prediction is unreliable: {hint}.")
    return out
