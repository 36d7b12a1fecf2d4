"""Tiny Paddle models for the export tests, built once per session with paddle.jit.save.

Every model is saved the way the export stage saves it (default clip_extra=True, input spec
[-1, C, H, W] named x), so the Lite compat rewrite sees exactly what it must repair.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from paddleopt.utils.imports import import_paddle
from paddleopt.utils.jit import save_layer

paddle = import_paddle()
nn = paddle.nn
F = nn.functional


class SmallCNN(nn.Layer):
    """conv/bn/relu/pool x2, flatten, dropout, linear: [N,1,28,28] -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(1, 8, 3, padding=1), nn.BatchNorm2D(8), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(8, 16, 3, padding=1), nn.BatchNorm2D(16), nn.ReLU(),
            nn.AdaptiveAvgPool2D(1))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: Any) -> Any:
        return self.fc(self.dropout(self.flatten(self.features(x))))


class InvertedResidual(nn.Layer):
    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        hidden = channels * expand
        self.block = nn.Sequential(
            nn.Conv2D(channels, hidden, 1, bias_attr=False), nn.BatchNorm2D(hidden), nn.ReLU6(),
            nn.Conv2D(hidden, hidden, 3, padding=1, groups=hidden, bias_attr=False),
            nn.BatchNorm2D(hidden), nn.ReLU6(),
            nn.Conv2D(hidden, channels, 1, bias_attr=False), nn.BatchNorm2D(channels))

    def forward(self, x: Any) -> Any:
        return x + self.block(x)


class MiniMobileNetV2(nn.Layer):
    """MobileNetV2-style: relu6, depthwise convs, residuals, flatten: [N,3,32,32] -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2D(3, 8, 3, stride=2, padding=1, bias_attr=False),
                                  nn.BatchNorm2D(8), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8, 4), InvertedResidual(8, 4))
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: Any) -> Any:
        return self.fc(paddle.flatten(self.pool(self.blocks(self.stem(x))), 1))


class ShuffleNet(nn.Layer):
    """channel_shuffle has neither a Lite kernel nor a paddle2onnx converter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: Any) -> Any:
        x = F.channel_shuffle(self.conv(x), 2)
        return self.fc(paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LayerNormNoAffine(nn.Layer):
    """F.layer_norm without weight/bias: in opt's table, yet opt 2.13 segfaults on it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(4, 8, 3, padding=1)

    def forward(self, x: Any) -> Any:
        y = self.conv(x)
        return F.layer_norm(y, y.shape[1:])


class NormSwish(nn.Layer):
    """instance_norm and swish: clip_extra drops SavedMean/SavedVariance and swish.beta."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(4, 8, 3, padding=1)
        self.norm = nn.InstanceNorm2D(8)

    def forward(self, x: Any) -> Any:
        return F.swish(self.norm(self.conv(x)))


SHAPES = {"cnn": [1, 28, 28], "mbv2": [3, 32, 32], "shuffle": [4, 8, 8], "layernorm": [4, 8, 8],
          "norm_swish": [4, 8, 8]}
BUILDERS = {"cnn": SmallCNN, "mbv2": MiniMobileNetV2, "shuffle": ShuffleNet,
            "layernorm": LayerNormNoAffine, "norm_swish": NormSwish}


def save_model(layer: Any, folder: Path, chw: list[int]) -> Path:
    layer.eval()
    spec = [paddle.static.InputSpec([-1, *chw], "float32", "x")]
    save_layer(layer, str(folder / "model"), input_spec=spec)  # clip_extra=True
    (folder / "model.pdiparams.info").unlink(missing_ok=True)
    return folder


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> folder with model.pdmodel + model.pdiparams (fp32, clip_extra=True)."""
    root = tmp_path_factory.mktemp("export_models")
    paddle.seed(0)
    return {name: save_model(build(), root / name, SHAPES[name])
            for name, build in BUILDERS.items()}


@pytest.fixture(scope="session")
def int8_dirs(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, Path]:
    """PTQ'd MiniMobileNetV2: "qdq" (onnx_format=True) and "fake" (fake_quantize ops)."""
    from paddleopt.compress.ptq import quantize_post_static

    root = tmp_path_factory.mktemp("export_int8")
    rng = np.random.default_rng(0)
    batches = [(rng.random((4, *SHAPES["mbv2"]), dtype=np.float32),) for _ in range(4)]
    out = {}
    for name, onnx_format in (("qdq", True), ("fake", False)):
        quantize_post_static(model_dirs["mbv2"], root / name, batches, algo="abs_max",
                             onnx_format=onnx_format)
        out[name] = root / name
    return out


def open_artifact(folder: Path) -> Any:
    from paddleopt.artifact import Artifact

    return Artifact.open(folder)


def stage_context(tmp_path: Path) -> Any:
    from paddleopt.stages.base import StageContext

    return StageContext(pipeline=None, stage_id="t", work_dir=tmp_path)


def paddle_outputs(model_dir: Path, x: np.ndarray, model_file: Path | None = None) -> np.ndarray:
    """Plain Paddle Inference (native fp32 kernels) on one input."""
    from paddle import inference

    config = inference.Config(str(model_file or model_dir / "model.pdmodel"),
                              str(model_dir / "model.pdiparams"))
    config.disable_mkldnn()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


# What the pipeline's export records for the sklearn digits data (8x8 grey images).
DIGITS_DATASET = {"name": "digits", "root": None, "eval_split": "test", "val_fraction": 0.1,
                  "seed": 7}
DIGITS_PREPROCESS = {"type": "image", "size": [8, 8], "channels": 1, "mean": [0.3],
                     "std": [0.4], "resize": "bilinear", "invert": False}


@pytest.fixture(scope="session")
def digits_artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmallCNN on [N,1,8,8] with a manifest naming its dataset, as export writes it, so that
    parity checks run on real evaluation samples."""
    from paddleopt.artifact import Manifest
    from paddleopt.artifact.foreign import wrap_inference_dir

    folder = tmp_path_factory.mktemp("digits_model")
    paddle.seed(0)
    save_model(SmallCNN(), folder, [1, 8, 8])
    manifest: Manifest = wrap_inference_dir(folder)
    manifest.model = {}
    manifest.dataset = dict(DIGITS_DATASET)
    manifest.preprocess = dict(DIGITS_PREPROCESS)
    manifest.save(folder)
    return folder
