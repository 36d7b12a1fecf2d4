"""Small image classifiers: a ResNet-style CNN and a MobileNetV2-style CNN (width multiplier).

Sized for 28x28 to 64x64 inputs (MNIST, digits, small image folders); both downsample three
times, so a 28x28 input ends at 7x7 (or 4x4) before global pooling.
"""
from __future__ import annotations

from typing import Any

from paddleopt.utils.imports import import_paddle


def _scaled(channels: int, width_mult: float, divisor: int = 8) -> int:
    """Round ``channels * width_mult`` to a multiple of ``divisor`` (MobileNet convention)."""
    value = max(divisor, int(channels * width_mult + divisor / 2) // divisor * divisor)
    if value < 0.9 * channels * width_mult:
        value += divisor
    return value


def resnet_small(num_classes: int = 10, in_channels: int = 1, width_mult: float = 1.0,
                 depths: tuple[int, ...] = (1, 1, 1), widths: tuple[int, ...] = (16, 32, 64),
                 **_: Any) -> Any:
    """ResNet-style CNN: conv stem, BasicBlock stages (stride 1, 2, 2), avg pool, linear."""
    paddle = import_paddle()
    nn = paddle.nn

    class BasicBlock(nn.Layer):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2D(cin, cout, 3, stride=stride, padding=1, bias_attr=False)
            self.bn1 = nn.BatchNorm2D(cout)
            self.conv2 = nn.Conv2D(cout, cout, 3, padding=1, bias_attr=False)
            self.bn2 = nn.BatchNorm2D(cout)
            self.relu = nn.ReLU()
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2D(cin, cout, 1, stride=stride, bias_attr=False), nn.BatchNorm2D(cout))

        def forward(self, x):  # noqa: ANN001, ANN201 - paddle tensors
            identity = x if self.shortcut is None else self.shortcut(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNetSmall(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            chans = [_scaled(w, width_mult) for w in widths]
            self.stem = nn.Sequential(
                nn.Conv2D(in_channels, chans[0], 3, padding=1, bias_attr=False),
                nn.BatchNorm2D(chans[0]), nn.ReLU())
            blocks, cin = [], chans[0]
            for stage, (cout, depth) in enumerate(zip(chans, depths)):
                for i in range(depth):
                    stride = 2 if stage > 0 and i == 0 else 1
                    blocks.append(BasicBlock(cin, cout, stride))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):  # noqa: ANN001, ANN201
            x = self.pool(self.blocks(self.stem(x)))
            return self.fc(paddle.flatten(x, 1))

    return ResNetSmall()


def mobilenet_v2_small(num_classes: int = 10, in_channels: int = 1, width_mult: float = 1.0,
                       settings: tuple[tuple[int, int, int, int], ...] | None = None,
                       last_channels: int = 256, **_: Any) -> Any:
    """MobileNetV2-style CNN (inverted residuals, ReLU6) for small inputs.

    ``settings`` rows are (expand t, channels c, repeats n, stride s) as in the paper.
    """
    paddle = import_paddle()
    nn = paddle.nn
    rows = settings or ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2), (4, 96, 1, 1))

    def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers = [nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups,
                            bias_attr=False), nn.BatchNorm2D(cout)]
        if act:
            layers.append(nn.ReLU6())
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Layer):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers = [] if expand == 1 else [conv_bn(cin, hidden, 1)]
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden),
                       conv_bn(hidden, cout, 1, act=False)]
            self.body = nn.Sequential(*layers)
            self.use_residual = stride == 1 and cin == cout

        def forward(self, x):  # noqa: ANN001, ANN201
            out = self.body(x)
            return x + out if self.use_residual else out

    class MobileNetV2Small(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            cin = _scaled(16, width_mult)
            layers = [conv_bn(in_channels, cin, 3)]
            for t, c, n, s in rows:
                cout = _scaled(c, width_mult)
                for i in range(n):
                    layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                    cin = cout
            last = _scaled(last_channels, max(1.0, width_mult))
            layers.append(conv_bn(cin, last, 1))
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.fc = nn.Linear(last, num_classes)

        def forward(self, x):  # noqa: ANN001, ANN201
            x = self.pool(self.features(x))
            return self.fc(paddle.flatten(x, 1))

    return MobileNetV2Small()


def lenet(num_classes: int = 10, in_channels: int = 1, width_mult: float = 1.0, **_: Any) -> Any:
    """LeNet-5 style CNN: the smallest model, for quick tests and distillation students."""
    paddle = import_paddle()
    nn = paddle.nn
    c1, c2 = _scaled(6, width_mult, 2), _scaled(16, width_mult, 2)

    class LeNet(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2D(in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2, 2),
                nn.Conv2D(c1, c2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2D(4))
            self.fc = nn.Sequential(nn.Linear(c2 * 16, 64), nn.ReLU(), nn.Linear(64, num_classes))

        def forward(self, x):  # noqa: ANN001, ANN201
            return self.fc(paddle.flatten(self.features(x), 1))

    return LeNet()
