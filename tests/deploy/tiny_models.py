"""The tiny CNN the backend tests share, saved as a Paddle inference artifact."""
from __future__ import annotations

from pathlib import Path

from paddleopt.artifact import IOSpec, Manifest, TensorSpec
from paddleopt.utils.imports import import_paddle
from paddleopt.utils.jit import save_layer

paddle = import_paddle()
IO = IOSpec(inputs=[TensorSpec("x", [-1, 1, 28, 28])], outputs=[TensorSpec("out", [-1, 10])])


class TinyCNN(paddle.nn.Layer):
    # The first parameter must be called `self`: paddle.jit.save's dy2static reads the
    # forward signature and misaligns the input spec otherwise.
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(1, 8, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(8)
        self.pool = paddle.nn.MaxPool2D(2)
        self.fc = paddle.nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):
        x = self.pool(paddle.nn.functional.relu(self.bn(self.conv(x))))
        return self.fc(paddle.flatten(x, 1))


def make_cnn(seed: int = 0, bn_stats: bool = True) -> TinyCNN:
    paddle.seed(seed)
    net = TinyCNN()
    if bn_stats:  # non-trivial BN statistics so that a wrong conv+bn fusion would show
        net.bn._mean.set_value(paddle.rand([8]) * 0.1)
        net.bn._variance.set_value(paddle.rand([8]) + 0.5)
    net.eval()
    return net


def save_inference(net: TinyCNN, folder: Path) -> Path:
    save_layer(net, str(folder / "model"),
                    input_spec=[paddle.static.InputSpec([-1, 1, 28, 28], "float32", "x")])
    Manifest(kind="inference", files={"model": "model.pdmodel", "params": "model.pdiparams"},
             io=IO).save(folder)
    return folder
