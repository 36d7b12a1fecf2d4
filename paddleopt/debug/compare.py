"""Per-layer error between two runs of the same model, and where the divergence jumps."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from paddleopt.debug.capture import QDQ_SUFFIX, Graph


@dataclass
class LayerError:
    """One op of the reference model whose output both runs have.

    Attributes:
        relative_error: ||b - a|| / ||a|| over every sample (0 = identical).
        cosine: cosine similarity of a and b per sample, averaged (1 = same direction).
        input_error: the largest relative error among the op's inputs (0 for model inputs):
            what the op inherited.
        added: relative_error - input_error, what the op itself added.
        quant_error: for an op B quantizes, the larger per-channel relative error
            (averaged over channels) of its quantized input activation (vs the same tensor
            before quantize/dequantize, both in B) and of its quantized weight (vs A's):
            what INT8 costs this op alone, free of the error it inherits. None when B does
            not quantize it.
    """

    index: int
    op: str
    tensor: str
    weight: str | None
    relative_error: float
    cosine: float
    input_error: float
    added: float
    quant_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Accumulator:
    """Sums over batches, so no tensor is kept longer than one batch."""

    def __init__(self) -> None:
        self.diff2: dict[str, float] = {}
        self.ref2: dict[str, float] = {}
        self.cos: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
        for name, x in a.items():
            y = b.get(name)
            if y is None or y.shape != x.shape or x.dtype.kind != "f" or x.size == 0:
                continue
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            self.diff2[name] = self.diff2.get(name, 0.0) + float(((y64 - x64) ** 2).sum())
            self.ref2[name] = self.ref2.get(name, 0.0) + float((x64 ** 2).sum())
            rows = max(x.shape[0], 1) if x.ndim else 1
            xa, ya = x64.reshape(rows, -1), y64.reshape(rows, -1)
            den = np.linalg.norm(xa, axis=1) * np.linalg.norm(ya, axis=1)
            sims = np.where(den > 0, (xa * ya).sum(1) / np.maximum(den, 1e-30),
                            (np.abs(xa).sum(1) + np.abs(ya).sum(1) == 0).astype(float))
            self.cos[name] = self.cos.get(name, 0.0) + float(sims.sum())
            self.count[name] = self.count.get(name, 0) + rows

    def relative_error(self, name: str) -> float | None:
        if name not in self.diff2:
            return None
        ref = self.ref2[name]
        if ref == 0:
            return 0.0 if self.diff2[name] == 0 else 1.0
        return float(np.sqrt(self.diff2[name] / ref))

    def cosine(self, name: str) -> float | None:
        return self.cos[name] / self.count[name] if name in self.cos else None


def quant_pairs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[
        dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(tensor before quantization, the same after quantize/dequantize) keyed by the tensor
    name: activations both from B, weights from A (fp32) and B."""
    before, after = {}, {}
    for name, value in b.items():
        if name.endswith(QDQ_SUFFIX):
            base = name[:-len(QDQ_SUFFIX)]
            src = b.get(base, a.get(base))
            if src is not None:
                before[base], after[base] = src, value
    return before, after


class ChannelAccumulator:
    """Relative error per channel, averaged over channels: a per-tensor INT8 scale set by a
    few large channels wipes out the small ones, which the whole-tensor norm hides."""

    def __init__(self) -> None:
        self.diff2: dict[str, np.ndarray] = {}
        self.ref2: dict[str, np.ndarray] = {}

    def add(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
        for name, x in a.items():
            y = b.get(name)
            if y is None or y.shape != x.shape or x.dtype.kind != "f" or x.ndim < 2:
                continue
            axis = 1 if x.ndim == 4 else x.ndim - 1  # NCHW channels; [N, T, C] features
            other = tuple(i for i in range(x.ndim) if i != axis)
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            d2, r2 = ((y64 - x64) ** 2).sum(other), (x64 ** 2).sum(other)
            self.diff2[name] = self.diff2.get(name, 0.0) + d2
            self.ref2[name] = self.ref2.get(name, 0.0) + r2

    def relative_error(self, name: str) -> float | None:
        if name not in self.diff2:
            return None
        live = self.ref2[name] > 0  # all-zero channels carry nothing
        if not live.any():
            return 0.0
        return float(np.mean(np.sqrt(self.diff2[name][live] / self.ref2[name][live])))


def layer_errors(graph: Graph, acc: Accumulator,
                 quant: ChannelAccumulator | None = None) -> list[LayerError]:
    """One row per op of ``graph`` with a compared output, in run order (``quant``: the
    accumulated ``quant_pairs``)."""
    err: dict[str, float] = {n: 0.0 for n in graph.feeds}  # both runs get the same inputs
    rows = []
    for op in graph.ops:
        out = next((n for n in op.outputs if acc.relative_error(n) is not None), None)
        inherited = max((err[n] for n in op.inputs if n in err), default=0.0)
        if out is None:  # not compared: pass what it inherited on to its consumers
            for n in op.outputs:
                err.setdefault(n, inherited)
            continue
        rel = acc.relative_error(out)
        for n in op.outputs:
            err[n] = acc.relative_error(n) if acc.relative_error(n) is not None else rel
        qerr = None
        if quant is not None:
            found = [quant.relative_error(n) for n in [*op.inputs, op.weight] if n]
            found = [e for e in found if e is not None]
            qerr = max(found) if found else None
        rows.append(LayerError(op.index, op.type, out, op.weight, rel, acc.cosine(out),
                               inherited, rel - inherited, qerr))
    return rows


def first_jump(rows: list[LayerError], share: float = 0.25,
               floor: float = 1e-3) -> LayerError | None:
    """The first op that adds at least ``share`` of the largest error any op adds (and more
    than ``floor``): where the two runs start to part, not where the damage accumulates."""
    largest = max((r.added for r in rows), default=0.0)
    if largest <= floor:
        return None
    return next(r for r in rows if r.added >= max(share * largest, floor))


def ranked(rows: list[LayerError], types: tuple[str, ...] | None = None) -> list[LayerError]:
    """Rows by the error they add, largest first (only ``types`` when given)."""
    keep = [r for r in rows if types is None or r.op in types]
    return sorted(keep, key=lambda r: -r.added)
