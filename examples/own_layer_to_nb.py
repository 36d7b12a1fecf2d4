"""Your own paddle.nn.Layer, trained by your own loop, through paddleopt's library:
prune -> fine-tune -> export (artifact with manifest) -> INT8 (judged against fp32) -> .nb.

    python examples/own_layer_to_nb.py [--out work_dirs/own_layer]

Data: sklearn's 8x8 digits (ships with scikit-learn, no download). Nothing here uses a
paddleopt config or model registry: the network, the optimizer and the loops are plain Paddle.
"""
from __future__ import annotations

import argparse
import gzip  # noqa: F401 - before paddle (see paddleopt.utils.imports)
import zlib  # noqa: F401
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from sklearn.datasets import load_digits

from paddleopt import oneshot
from paddleopt.compress.prune import count_flops, prune_filters


class DigitNet(nn.Layer):
    """A user's own network: nothing paddleopt-specific."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2D(32)
        self.conv2 = nn.Conv2D(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2D(64)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = ((digits.images / 16.0 - 0.3) / 0.4).astype("float32")[:, None]  # [N, 1, 8, 8]
    y = digits.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def train(model: nn.Layer, x: np.ndarray, y: np.ndarray, epochs: int, lr: float) -> None:
    """The user's own loop."""
    opt = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters())
    model.train()
    for _ in range(epochs):
        for i in range(0, len(y), 64):
            loss = F.cross_entropy(model(paddle.to_tensor(x[i:i + 64])),
                                   paddle.to_tensor(y[i:i + 64]))
            loss.backward()
            opt.step()
            opt.clear_grad()
    model.eval()


def accuracy(model: nn.Layer, x: np.ndarray, y: np.ndarray) -> float:
    with paddle.no_grad():
        return float((model(paddle.to_tensor(x)).numpy().argmax(1) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="work_dirs/own_layer")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    out = Path(args.out)
    paddle.seed(0)
    x_train, y_train, x_test, y_test = data()

    model = DigitNet()
    train(model, x_train, y_train, args.epochs, 0.01)
    flops = count_flops(model, [1, 1, 8, 8])
    print(f"trained: accuracy {accuracy(model, x_test, y_test):.4f}, {flops} FLOPs")

    # Prune 40% of the FLOPs (filters really removed), then fine-tune with the same loop.
    report = prune_filters(model, [1, 1, 8, 8], flops_reduction=0.4, spread="uniform")
    print(f"pruned: accuracy {accuracy(model, x_test, y_test):.4f}, "
          f"{count_flops(model, [1, 1, 8, 8])} FLOPs ({report.flops_reduction:.0%} fewer)")
    train(model, x_train, y_train, 2, 0.003)
    print(f"fine-tuned: accuracy {accuracy(model, x_test, y_test):.4f}")

    # Export: an artifact folder (inference.pdmodel + inference.yml + manifest.json).
    art = oneshot.export_layer(
        model, out / "export", [paddle.static.InputSpec([None, 1, 8, 8], "float32", "x")],
        preprocess={"size": [8, 8], "channels": 1, "mean": [0.3], "std": [0.4]},
        labels=[str(i) for i in range(10)])
    print(f"exported: {art.path} ({', '.join(art.manifest.files.values())})")

    # INT8, judged against the fp32 model on held-out real inputs (no labels needed).
    calib = out / "calib.npz"
    np.savez(calib, x=x_train[:256])
    quant = oneshot.quantize(art.path, calib, out / "quantize", max_drop=0.01)
    print(quant.describe())
    best = quant.artifact or art.path

    # Paddle Lite .nb for an ARM device (INT8 when kept), and the fp32 model for x86, which
    # this machine can run (Lite 2.13's x86 INT8 kernels compute garbage; to_lite refuses).
    for model_dir, targets, where in ((best, ["lite-arm"], "arm"),
                                      (art.path, ["lite-x86"], "x86")):
        result = oneshot.convert(model_dir, targets, out / f"lite_{where}")
        for sid, lite in result.artifacts.items():
            print(f"{sid}: {lite.path / lite.manifest.files['model']} "
                  f"({lite.manifest.precision}, {lite.size_bytes() / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
