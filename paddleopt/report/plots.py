"""PNG plots for reports (matplotlib, headless Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x = latency, higher
    y = accuracy), sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def candidates_plot(rows: list[dict[str, Any]], baseline: dict[str, Any],
                    budget: float | None, path: str | Path, title: str = "") -> Path:
    """Accuracy vs latency of every measured candidate, the fp32 baseline, the accuracy
    budget and the Pareto front; kept / within budget / rejected told apart by marker.

    A candidate's latency is drawn as the fp32 p50 divided by its paired speedup (see
    ``stages._int8.paired_timing``), so points measured at different moments compare."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe when another backend was selected
    import matplotlib.pyplot as plt

    measured = [r for r in rows if "latency_ms" in r and r.get("accuracy") is not None]
    fp32_p50 = (baseline.get("latency_ms") or {}).get("p50")

    def latency(row: dict[str, Any]) -> float:
        # Candidates are timed minutes apart on a shared machine; each speedup comes from an
        # fp32 timing taken right next to it. Plotting fp32 latency / speedup puts them all
        # on the same footing (the raw p50 of every candidate is in candidates.json).
        if fp32_p50 and row.get("speedup_vs_fp32"):
            return fp32_p50 / row["speedup_vs_fp32"]
        return row["latency_ms"]["p50"]

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for row in measured:
        x, y = latency(row), 100 * row["accuracy"]
        status = row.get("status", "")
        if status == "rejected":
            ax.scatter([x], [y], marker="x", color="tab:red", s=60, zorder=3)
        else:  # kept (filled) or within budget but not chosen (hollow)
            ax.scatter([x], [y], marker="o", s=60, zorder=3, edgecolors="tab:green",
                       facecolors="tab:green" if status == "kept" else "none")
        label = row["name"] + (" (chosen)" if row.get("chosen") else "")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if row.get("chosen"):
            ax.scatter([x], [y], marker="o", s=220, facecolors="none", edgecolors="black",
                       zorder=4)
    if baseline.get("accuracy") is not None:
        bx, by = baseline["latency_ms"]["p50"], 100 * baseline["accuracy"]
        ax.scatter([bx], [by], marker="*", color="tab:blue", s=150, zorder=3)
        ax.annotate("fp32", (bx, by), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if budget is not None:
            ax.axhline(by - 100 * budget, color="tab:orange", linestyle="--", linewidth=1,
                       label=f"budget: fp32 - {100 * budget:.2f} points")
    points = [(latency(r), r["accuracy"]) for r in measured]
    if points:
        front = pareto_front(points)
        ax.plot([points[i][0] for i in front], [100 * points[i][1] for i in front],
                color="black", linewidth=1, alpha=0.6, marker="D", markersize=11,
                markerfacecolor="none", label="Pareto front (candidates)", zorder=2)
    ax.set_xlabel("p50 latency per batch (ms): fp32 p50 / paired speedup; Paddle Inference "
                  "oneDNN", fontsize=9)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "candidates")
    ax.grid(True, alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", color="tab:green", linestyle="", label="kept"),
               plt.Line2D([], [], marker="o", color="tab:green", markerfacecolor="none",
                          linestyle="", label="within budget, not chosen"),
               plt.Line2D([], [], marker="x", color="tab:red", linestyle="", label="rejected"),
               plt.Line2D([], [], marker="*", color="tab:blue", linestyle="", label="fp32")]
    extra, labels = ax.get_legend_handles_labels()
    ax.legend(handles=handles + extra, labels=[h.get_label() for h in handles] + labels,
              fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
