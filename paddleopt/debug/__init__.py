"""Accuracy debugger: where two artifacts of the same model start to disagree, layer by layer.

``debug(a, b, feeds)`` runs both on the same inputs, aligns intermediate tensors by name (see
``capture``), reports each op's relative error and cosine against ``a`` and the first op
where the divergence jumps (``compare``); when ``b`` is a PTQ INT8 model of ``a``, it also
finds the layers to leave in fp32, verified by re-quantizing (``fallback``), as a ptq
``skip_tensors`` list. Docs: docs/DEBUG.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.debug.capture import QDQ_SUFFIX, Runner
from paddleopt.debug.compare import (Accumulator, ChannelAccumulator, LayerError, first_jump,
                                     layer_errors, quant_pairs, ranked)
from paddleopt.debug.describe import describe_fallback
from paddleopt.debug.fallback import Fallback
from paddleopt.utils.errors import UserError


@dataclass
class DebugReport:
    a: str
    b: str
    samples: int
    compared: int  # ops of a whose output b also has
    layers: list[LayerError]
    jump: LayerError | None
    fallback: Fallback | None = None
    plot: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "samples": self.samples, "compared": self.compared,
                "layers": [r.to_dict() for r in self.layers],
                "jump": self.jump.to_dict() if self.jump else None,
                "fallback": self.fallback.to_dict() if self.fallback else None,
                "plot": self.plot, "notes": self.notes}

    def describe(self, top: int = 8) -> str:
        lines = [f"compared {self.compared} layers of {self.a} and {self.b} on "
                 f"{self.samples} samples"]
        if self.layers:
            last = self.layers[-1]
            lines.append(f"last layer: {last.op} -> {last.tensor}: relative error "
                         f"{last.relative_error:.4g}, cosine {last.cosine:.4f}")
        if self.jump is None:
            lines.append("no layer stands out: the runs agree everywhere")
        else:
            j = self.jump
            lines.append(f"first jump: op #{j.index} {j.op} -> {j.tensor}"
                         + (f" (weight {j.weight})" if j.weight else "")
                         + f": relative error {j.input_error:.4g} -> {j.relative_error:.4g}")
        lines.append(f"layers adding the most error (top {top}):")
        lines.append(f"  {'op':>5} {'type':<18} {'added':>9} {'rel.err':>9} {'cosine':>7} "
                     f"{'int8 err':>9}  tensor")
        for r in ranked(self.layers)[:top]:
            q = "-" if r.quant_error is None else f"{r.quant_error:.4g}"
            lines.append(f"  {r.index:>5} {r.op:<18} {r.added:>9.4g} {r.relative_error:>9.4g} "
                         f"{r.cosine:>7.4f} {q:>9}  {r.tensor}")
        if self.fallback is not None:
            lines += describe_fallback(self.fallback)
        if self.plot:
            lines.append(f"plot: {self.plot}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def compare(a: Any, b: Any, feeds: list[np.ndarray], batch_size: int = 8) -> tuple[
        list[LayerError], int]:
    """Per-layer errors of artifact ``b`` against ``a`` on ``feeds`` (rows in a's op order)."""
    ra, rb = Runner(a), Runner(b)
    names = [n for op in ra.graph.ops for n in op.outputs if n in rb.graph.tensors]
    weights = [op.weight for op in ra.graph.ops if op.weight]
    quantized = [n + QDQ_SUFFIX for op in ra.graph.ops for n in [*op.inputs, op.weight]
                 if n and n + QDQ_SUFFIX in rb.graph.tensors]
    if not names:
        raise UserError(f"'{a.path}' and '{b.path}' share no intermediate tensor names.",
                        "compare two artifacts of the same model (e.g. fp32 and its INT8 or "
                        "ONNX conversion).")
    acc, quant = Accumulator(), ChannelAccumulator()
    with ra.session([*names, *weights]) as run_a, \
            rb.session([*names, *dict.fromkeys(quantized)]) as run_b:
        for i in range(0, len(feeds[0]), batch_size):
            batch = [f[i:i + batch_size] for f in feeds]
            out_a, out_b = run_a(batch), run_b(batch)
            out_a.update(zip(ra.graph.feeds, batch))  # a quantized model input's source
            acc.add(out_a, out_b)
            quant.add(*quant_pairs(out_a, out_b))
    rows = layer_errors(ra.graph, acc, quant if quantized else None)
    return rows, len(rows)


def debug(a: Any, b: Any, feeds: list[np.ndarray], *, out_dir: str | Path | None = None,
          fallback: bool | None = None, target: float = 0.8, max_layers: int = 4,
          batch_size: int = 8, metric: str | None = None, log: Any = None,
          holdout: list[np.ndarray] | None = None) -> DebugReport:
    """Compare artifacts ``a`` (reference) and ``b`` layer by layer on ``feeds``.

    Args:
        fallback: search the fp32 fallback (None: when ``b`` is an INT8 model and ``a`` fp32).
        holdout: inputs the fallback is verified on, never searched on (None: the second
            half of ``feeds``; the first half is then the search and calibration set).
        target: share of the lost agreement the skip list must recover.
        max_layers: at most this many layers are tried in fp32.
        metric: the fallback's score, ``package.module:function(outputs, reference)``
            (default: ``metrics.agreement``).
        out_dir: where the plot and debug.json go (None: nowhere).
    """
    # every intermediate tensor of both models is held per batch (PP-OCRv4 rec: ~16 GB at 8
    # samples), so the layer comparison runs 2 samples at a time; the sums are the same
    rows, compared = compare(a, b, feeds, min(batch_size, 2))
    report = DebugReport(str(a.path), str(b.path), len(feeds[0]), compared, rows,
                         first_jump(rows))
    is_ptq = (b.manifest.precision == "int8" and a.manifest.precision != "int8"
              and a.kind == "inference" and b.kind == "inference")
    if fallback is None:
        fallback = is_ptq
    if fallback and not is_ptq:
        raise UserError("the fp32 fallback search needs A = an fp32 inference artifact and "
                        "B = its INT8 (ptq) artifact.", "drop --fallback, or pass those two.")
    if fallback:
        from paddleopt.debug.fallback import search

        search_feeds = feeds
        if holdout is None:
            half = len(feeds[0]) // 2
            if half < 1:
                raise UserError("the fp32 fallback needs at least 2 samples (half to search, "
                                "half to verify on).", "pass more inputs (--count 32).")
            search_feeds, holdout = [f[:half] for f in feeds], [f[half:] for f in feeds]
            report.notes.append(f"fallback searched (and re-quantizing calibrated) on the "
                                f"first {half} samples, verified on the other "
                                f"{len(holdout[0])}")
        report.fallback = search(a, b, search_feeds, rows, holdout=holdout, target=target,
                                 max_layers=max_layers, batch_size=batch_size, metric=metric,
                                 log=log)
    if out_dir is not None:
        import json

        from paddleopt.debug.plot import layer_plot

        out = Path(out_dir)
        report.plot = str(layer_plot(rows, report.jump, out / "debug.png",
                                     f"{Path(a.path).name} vs {Path(b.path).name}"))
        (out / "debug.json").write_text(json.dumps(report.to_dict(), indent=1))
    return report
