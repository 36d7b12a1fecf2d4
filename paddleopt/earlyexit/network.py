"""Multi-exit networks: a backbone cut into units, exit heads after chosen units.

A backbone is seen as a sequence of named units (``stem``, ``blocks.0``, ... for
``resnet_small``; ``features.0``, ... for ``mobilenet_v2_small``) followed by its own final head
(``tail``: pool, flatten, fc). An exit head after unit ``k`` classifies unit ``k``'s feature map.
The same weights serve three uses:

* training (``MultiExitNet``): ``forward`` returns the final logits, as the plain model does,
  so ``engine.loop.fit``/``evaluate`` work unchanged; the exits' logits of the same call are
  kept in ``exit_logits`` for the joint loss;
* deployment as chained segments (``Segment``): segment ``i`` maps the previous feature map to
  (its feature map, exit ``i``'s logits); the last one maps it to the final logits;
* checks: ``AllExits`` returns every exit's logits in one program.
"""
from __future__ import annotations

from typing import Any

from paddleopt.utils.errors import ConfigError
from paddleopt.utils.imports import import_paddle

# arch -> (name of the Sequential holding the body units, names of leading units)
BACKBONES: dict[str, tuple[str, tuple[str, ...]]] = {
    "resnet_small": ("blocks", ("stem",)),
    "mobilenet_v2_small": ("features", ()),
}


def backbone_units(model: Any, arch: str) -> list[tuple[str, Any]]:
    """The ordered (name, layer) units of a supported backbone."""
    if arch not in BACKBONES:
        raise ConfigError(f"early exit supports the CNN families {', '.join(BACKBONES)}; the "
                          f"model is '{arch}'.",
                          "use model.arch: resnet_small or mobilenet_v2_small.")
    body, lead = BACKBONES[arch]
    units = [(name, getattr(model, name)) for name in lead]
    units += [(f"{body}.{i}", layer) for i, layer in enumerate(getattr(model, body))]
    return units


def default_exits(unit_names: list[str]) -> list[str]:
    """Exits at about one and two thirds of the units (never after the last unit)."""
    n = len(unit_names)
    picks = sorted({max(1, round(n / 3)), max(1, round(2 * n / 3))})
    return [unit_names[i] for i in picks if i < n - 1]


def build_head(channels: int, num_classes: int, pool: int) -> Any:
    """Exit head: adaptive average pool to ``pool`` x ``pool``, flatten, linear. Keeping a
    small spatial grid (instead of a global pool) is what makes an early, shallow feature map
    classifiable at almost no cost (one small matmul)."""
    nn = import_paddle().nn
    return nn.Sequential(nn.AdaptiveAvgPool2D(pool), nn.Flatten(),
                         nn.Linear(channels * pool * pool, num_classes))



def make_multi_exit(model: Any, arch: str, exits: list[str], num_classes: int,
                    input_shape: list[int], head_pool: int = 4) -> Any:
    """Wrap a built backbone (trained weights kept) with exit heads after ``exits``."""
    paddle = import_paddle()
    nn = paddle.nn
    units = backbone_units(model, arch)
    names = [n for n, _ in units]
    unknown = [e for e in exits if e not in names[:-1]]
    if unknown or not exits:
        raise ConfigError(f"early_exit.exits {exits}: {unknown or 'empty'} is not a unit "
                          f"of {arch} an exit can follow.",
                          f"use names from: {', '.join(names[:-1])}.")
    positions = sorted(names.index(e) for e in exits)
    channels = _unit_channels([layer for _, layer in units], input_shape)

    class MultiExitNet(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.units = nn.LayerList([layer for _, layer in units])
            self.heads = nn.LayerList([build_head(channels[p], num_classes, head_pool)
                                       for p in positions])
            self.pool = model.pool
            self.fc = model.fc
            self.positions = positions
            self.unit_names = names
            self.exit_logits: list[Any] = []

        def tail(self, x):  # noqa: ANN001, ANN201 - paddle tensors
            return self.fc(paddle.flatten(self.pool(x), 1))

        def forward(self, x):  # noqa: ANN001, ANN201
            logits = []
            for i, unit in enumerate(self.units):
                x = unit(x)
                if i in self.positions:
                    logits.append(self.heads[self.positions.index(i)](x))
            self.exit_logits = logits
            return self.tail(x)

    return MultiExitNet()


def _unit_channels(layers: list[Any], input_shape: list[int]) -> list[int]:
    """Output channels of each unit, from one traced sample."""
    paddle = import_paddle()
    x = paddle.zeros([1, *input_shape[1:]], dtype="float32")
    out = []
    with paddle.no_grad():
        for layer in layers:
            was = layer.training
            layer.eval()
            x = layer(x)
            if was:
                layer.train()
            out.append(int(x.shape[1]))
    return out


def segments(net: Any, with_heads: bool = True) -> list[Any]:
    """The deployable pieces of a ``MultiExitNet``: one per exit (feature in -> feature out,
    and the exit's logits when ``with_heads``; else the runner computes the head on the host,
    see ``host_heads``) and the last (feature in -> final logits). They share ``net``'s
    weights."""
    paddle = import_paddle()
    nn = paddle.nn
    bounds = [-1, *net.positions, len(net.units) - 1]
    last = len(bounds) - 2

    class Segment(nn.Layer):
        def __init__(self, start: int, stop: int, head: Any | None, final: bool) -> None:
            super().__init__()
            self.body = nn.LayerList([net.units[i] for i in range(start, stop + 1)])
            self.head = head
            self.final = final
            # the last segment ends with the backbone's own pool + fc (not the whole net:
            # a registered sublayer would be counted by paddle.flops and saved)
            self.pool = net.pool if final else None
            self.fc = net.fc if final else None

        def forward(self, x):  # noqa: ANN001, ANN201
            for unit in self.body:
                x = unit(x)
            if self.final:
                return self.fc(paddle.flatten(self.pool(x), 1))
            if self.head is not None:
                return x, self.head(x)
            return x

    out = []
    for k in range(len(bounds) - 1):
        head = net.heads[k] if k < len(net.positions) and with_heads else None
        out.append(Segment(bounds[k] + 1, bounds[k + 1], head, k == last))
    return out


def head_arrays(net: Any) -> dict[str, Any]:
    """Every exit head as numpy arrays (``pool``, ``weight_<i>`` [in, out], ``bias_<i>``) for
    ``paddleopt.earlyexit.runner.HostHead``."""
    import numpy as np

    arrays: dict[str, Any] = {}
    for i, head in enumerate(net.heads):
        pool, linear = head[0], head[2]
        arrays[f"pool_{i}"] = np.asarray(pool._output_size, dtype=np.int64).reshape(-1)
        arrays[f"weight_{i}"] = linear.weight.numpy()
        arrays[f"bias_{i}"] = linear.bias.numpy()
    return arrays


def all_exits(net: Any) -> Any:
    """A layer returning every exit's logits and the final logits (parity checks)."""
    nn = import_paddle().nn

    class AllExits(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN201
            final = self.net(x)
            return (*self.net.exit_logits, final)

    return AllExits()
