"""The report's pictures (matplotlib, headless): training curves, every deployment's accuracy
vs latency with its Pareto front, and size/latency bars per backend and precision. Each
function returns PNG bytes (the HTML report embeds them) or None when there is nothing to draw.
"""
from __future__ import annotations

import io
from typing import Any

from paddleopt.report.plots import pareto_front


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe when another backend was selected
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    _pyplot().close(fig)
    return buf.getvalue()


def training_curves(stage: str, history: list[dict[str, Any]]) -> bytes | None:
    """Train loss (and eval loss) per epoch on the left, eval accuracy on the right."""
    epochs = [h["epoch"] for h in history if "epoch" in h]
    if not epochs:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for key, style in (("train_loss", "o-"), ("eval_loss", "s--")):
        pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if pts:
            left.plot(*zip(*pts), style, label=key.replace("_", " "))
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend(fontsize=8)
    left.grid(True, alpha=0.3)
    acc = [(h["epoch"], 100 * h["eval_accuracy"]) for h in history
           if h.get("eval_accuracy") is not None]
    if acc:
        right.plot(*zip(*acc), "o-", color="tab:green")
        samples = next((h.get("eval_samples") for h in reversed(history)
                        if h.get("eval_samples")), None)
        right.set_ylabel("eval accuracy (%)" + (f", n={samples:,}" if samples else ""))
    else:
        right.text(0.5, 0.5, "no per-epoch evaluation recorded", ha="center", va="center",
                   transform=right.transAxes)
    right.set_xlabel("epoch")
    right.grid(True, alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):  # epochs are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{stage}: training", fontsize=10)
    return _png(fig)


def _label(row: dict[str, Any]) -> str:
    return f"{row['variant']} b{row['batch_size']}"


def deployments_pareto(rows: list[dict[str, Any]]) -> bytes | None:
    """Accuracy vs p50 latency per sample of every deployment row; the Pareto front joined.

    Latency is per sample (p50 of a batch / batch size) so batch sizes share one axis."""
    rows = [r for r in rows if r.get("accuracy") is not None and r.get("latency_ms")]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    points = [(r["latency_ms"]["p50"] / r["batch_size"], 100 * r["accuracy"]) for r in rows]
    for row, (x, y) in zip(rows, points):
        ax.scatter([x], [y], s=50, zorder=3,
                   marker={"int8": "^", "fp16": "s"}.get(row["precision"], "o"))
        ax.annotate(_label(row), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="black",
            alpha=0.5, linewidth=1, label="Pareto front", zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per sample (ms, log scale) = p50 per batch / batch size")
    samples = sorted({r.get("eval_samples") for r in rows if r.get("eval_samples")})
    ax.set_ylabel("accuracy (%)" + (f", n={'/'.join(f'{s:,}' for s in samples)}"
                                    if samples else ""))
    ax.set_title("deployments: accuracy vs latency (triangle: int8, square: fp16)", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)


def size_latency_bars(rows: list[dict[str, Any]]) -> bytes | None:
    """Model size per deployment and p50 latency per row (backend/precision/batch)."""
    if not rows:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.9 + 0.35 * len(rows)), dpi=100)
    names = [f"{r['variant']} ({r['backend']}, {r['precision']}) b{r['batch_size']}"
             for r in rows]
    sizes = {f"{r['variant']} ({r['backend']}, {r['precision']})": r["size_bytes"] / 1024
             for r in rows}
    left.barh(list(sizes), list(sizes.values()), color="tab:blue")
    left.set_xlabel("size (KB)")
    left.invert_yaxis()
    right.barh(names, [r["latency_ms"]["p50"] for r in rows], color="tab:orange")
    right.set_xlabel("p50 latency per batch (ms)")
    right.invert_yaxis()
    for ax in (left, right):
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)
