"""Tiny models and data shared by the compression tests (built once per session)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from paddleopt.utils.imports import import_paddle
from paddleopt.utils.jit import save_layer

paddle = import_paddle()
nn = paddle.nn


class TinyCNN(nn.Layer):
    """3 conv+BN+ReLU blocks, global pool, linear head: 1x8x8 digits -> 10 classes."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 32), num_classes: int = 10,
                 bn: bool = True) -> None:
        super().__init__()
        c = channels
        self.conv1 = nn.Conv2D(1, c[0], 3, padding=1)
        self.bn1 = nn.BatchNorm2D(c[0]) if bn else nn.Identity()
        self.conv2 = nn.Conv2D(c[0], c[1], 3, padding=1)
        self.bn2 = nn.BatchNorm2D(c[1]) if bn else nn.Identity()
        self.conv3 = nn.Conv2D(c[1], c[2], 3, padding=1)
        self.bn3 = nn.BatchNorm2D(c[2]) if bn else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(c[2], num_classes)

    def forward(self, x: Any) -> Any:
        x = nn.functional.relu(self.bn1(self.conv1(x)))
        x = nn.functional.relu(self.bn2(self.conv2(x)))
        x = nn.functional.relu(self.bn3(self.conv3(x)))
        return self.fc(paddle.flatten(self.pool(x), 1))


class TwoInputNet(nn.Layer):
    """An image and a variable-length feature sequence: two inputs, dynamic seq length."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(1, 8, 3, padding=1)
        self.seq = nn.Linear(6, 8)
        self.head = nn.Linear(16, 4)

    def forward(self, image: Any, feats: Any) -> Any:
        a = paddle.flatten(nn.functional.adaptive_avg_pool2d(
            nn.functional.relu(self.conv(image)), 1), 1)
        b = nn.functional.relu(self.seq(feats)).mean(axis=1)
        return self.head(paddle.concat([a, b], axis=1))


IMAGE_SPEC = [{"name": "x", "shape": [-1, 1, 8, 8], "dtype": "float32"}]


def input_spec(specs: list[dict]) -> list[Any]:
    return [paddle.static.InputSpec([None if d < 0 else d for d in s["shape"]], s["dtype"],
                                    s["name"]) for s in specs]


def train(model: Any, x: np.ndarray, y: np.ndarray, epochs: int = 3, lr: float = 1e-2,
          batch: int = 64) -> None:
    opt = paddle.optimizer.Adam(lr, parameters=model.parameters())
    xt, yt = paddle.to_tensor(x), paddle.to_tensor(y)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), batch):
            loss = nn.functional.cross_entropy(model(xt[i:i + batch]), yt[i:i + batch])
            loss.backward()
            opt.step()
            opt.clear_grad()
    model.eval()


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with paddle.no_grad():
        return float((model(paddle.to_tensor(x)).numpy().argmax(1) == y).mean())


def run_inference(model_dir: Path, feeds: list[np.ndarray], *, int8: bool = False,
                  onednn: bool = True) -> np.ndarray:
    """First output of a Paddle Inference predictor (oneDNN; INT8 kernels when ``int8``)."""
    import paddle.inference as pi

    config = pi.Config(str(model_dir / "model.pdmodel"), str(model_dir / "model.pdiparams"))
    if onednn:
        config.enable_mkldnn()
        if int8:
            config.enable_mkldnn_int8()
    else:
        config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(1)
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    for name, x in zip(predictor.get_input_names(), feeds, strict=True):
        handle = predictor.get_input_handle(name)
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(np.ascontiguousarray(x))
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """sklearn digits as 1x8x8 float32 in [0, 1]: 1500 train / 297 validation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype("float32")[:, None]
    y = d.target.astype("int64")
    return {"x_train": x[:1500], "y_train": y[:1500], "x_val": x[1500:], "y_val": y[1500:]}


@pytest.fixture(scope="session")
def trained_state(digits: dict[str, np.ndarray]) -> dict[str, Any]:
    """State dict of a TinyCNN trained 5 epochs on digits (val accuracy ~0.95)."""
    paddle.seed(0)
    model = TinyCNN()
    train(model, digits["x_train"], digits["y_train"], epochs=5, lr=5e-3)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def trained_cnn(trained_state: dict[str, Any]) -> Any:
    """A fresh copy of the trained TinyCNN (tests may modify it)."""
    model = TinyCNN()
    model.set_state_dict(trained_state)
    model.eval()
    return model


@pytest.fixture(scope="session")
def fp32_model_dir(tmp_path_factory: pytest.TempPathFactory, trained_state: dict) -> Path:
    """The trained TinyCNN exported as an fp32 inference model (input 'x': [-1,1,8,8])."""
    model = TinyCNN()
    model.set_state_dict(trained_state)
    model.eval()
    out = tmp_path_factory.mktemp("fp32")
    save_layer(model, str(out / "model"), input_spec=input_spec(IMAGE_SPEC))
    return out


@pytest.fixture(scope="session")
def two_input_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TwoInputNet exported with inputs image [-1,1,8,8] and feats [-1,-1,6] (dynamic)."""
    paddle.seed(1)
    model = TwoInputNet()
    model.eval()
    out = tmp_path_factory.mktemp("two_input")
    save_layer(model, str(out / "model"), input_spec=input_spec([
        {"name": "image", "shape": [-1, 1, 8, 8], "dtype": "float32"},
        {"name": "feats", "shape": [-1, -1, 6], "dtype": "float32"}]))
    return out
