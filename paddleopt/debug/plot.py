"""The per-layer error plot (matplotlib, headless Agg backend, like report/plots.py)."""
from __future__ import annotations

from pathlib import Path

from paddleopt.debug.compare import LayerError


def layer_plot(rows: list[LayerError], jump: LayerError | None, path: str | Path,
               title: str = "") -> Path:
    """Relative error (log scale) and cosine of every compared op in run order; the first
    jump marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(rows)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, len(rows) * 0.12), 6),
                                      sharex=True)
    top.semilogy(x, [max(r.relative_error, 1e-8) for r in rows], ".-", lw=1)
    top.set_ylabel("relative error")
    bottom.plot(x, [r.cosine for r in rows], ".-", lw=1, color="tab:green")
    bottom.set_ylabel("cosine")
    bottom.set_xlabel("op (run order)")
    if jump is not None:
        i = rows.index(jump)
        for ax in (top, bottom):
            ax.axvline(i, color="tab:red", ls="--", lw=1)
        top.annotate(f"first jump: {jump.op} -> {jump.tensor}", (i, max(jump.relative_error,
                     1e-8)), xytext=(5, 5), textcoords="offset points", color="tab:red",
                     fontsize=8)
    top.set_title(title or "per-layer divergence")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
