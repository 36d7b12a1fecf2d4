"""Models the speed suites share (backends, pi_call_cost): built once, exported to Paddle
inference artifacts under a cache folder, reused while the folder exists.

Real-size vision models come from ``paddle.vision.models`` with random weights (speed does not
depend on the weights; agreement with fp32 is measured on real images, see ``real_images``).
The real pretrained third-party OCR models live in ``paddleopt.zoo.rapidocr``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from _common import REPO

CACHE = REPO / "work_dirs" / "bench_models"


@dataclass(frozen=True)
class VisionModel:
    name: str
    build: Callable[[], Any]  # -> paddle.nn.Layer in eval mode
    shape: tuple[int, int, int]  # C, H, W of one sample


def _quickstart_cnn() -> Any:
    from paddleopt.models.vision import resnet_small

    return resnet_small(num_classes=10, in_channels=1, depths=[1, 1, 1], widths=[16, 32, 64])


def _resnet50() -> Any:
    from paddle.vision.models import resnet50

    return resnet50(pretrained=False)


def _mobilenet_v3() -> Any:
    from paddle.vision.models import mobilenet_v3_large

    return mobilenet_v3_large(pretrained=False)


VISION_MODELS: dict[str, VisionModel] = {
    "quickstart_cnn": VisionModel("quickstart_cnn", _quickstart_cnn, (1, 28, 28)),
    "resnet50": VisionModel("resnet50", _resnet50, (3, 224, 224)),
    "mobilenet_v3_large": VisionModel("mobilenet_v3_large", _mobilenet_v3, (3, 224, 224)),
}


def export_vision(name: str, cache: Path = CACHE, seed: int = 0) -> Any:
    """The Paddle inference artifact of ``VISION_MODELS[name]`` (random weights, seeded),
    dynamic batch; exported on first use. Returns an ``Artifact``."""
    from paddleopt.artifact import Artifact, IOSpec, Manifest, TensorSpec
    from paddleopt.utils.imports import import_paddle
    from paddleopt.utils.jit import save_layer

    folder = cache / name
    try:
        return Artifact.open(folder)
    except Exception:  # noqa: BLE001 - not exported yet
        pass
    paddle = import_paddle()
    spec = VISION_MODELS[name]
    paddle.seed(seed)
    net = spec.build()
    net.eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_layer(net, str(folder / "model"),
               input_spec=[paddle.static.InputSpec([-1, *spec.shape], "float32", "x")])
    out = net(paddle.zeros([1, *spec.shape]))
    Manifest(kind="inference", files={"model": "model.pdmodel", "params": "model.pdiparams"},
             io=IOSpec(inputs=[TensorSpec("x", [-1, *spec.shape])],
                       outputs=[TensorSpec("out", [-1, *out.shape[1:]])]),
             model={"arch": name, "weights": f"random (paddle.seed {seed})"}).save(folder)
    return Artifact.open(folder)


def real_images(count: int, shape: tuple[int, int, int], seed: int = 0) -> Any:
    """``count`` real photo crops (sklearn's sample images china.jpg / flower.jpg), resized to
    ``shape`` (C, H, W), ImageNet-normalized, float32 NCHW; grayscale for C == 1."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images  # two 427x640 RGB photos
    channels, height, width = shape
    out = np.empty((count, *shape), dtype="float32")
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(min(photo.shape[:2]) // 3, min(photo.shape[:2])))
        y = int(rng.integers(0, photo.shape[0] - side + 1))
        x = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((width, height))
        arr = np.asarray(crop, dtype="float32") / 255.0
        if channels == 1:
            out[i, 0] = (arr.mean(axis=2) - 0.5) / 0.5
        else:
            mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
            out[i] = ((arr - mean) / std).transpose(2, 0, 1)
    return out
