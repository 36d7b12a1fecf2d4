"""The candidates plot (Pareto front, PNG) and its section in report.md."""
from __future__ import annotations

from paddleopt.report.plots import candidates_plot, pareto_front
from paddleopt.report.render import markdown


def test_pareto_front_keeps_the_undominated_points():
    # (latency, accuracy): lower latency and higher accuracy win
    points = [(1.0, 0.90), (2.0, 0.95), (1.5, 0.80), (3.0, 0.94), (2.5, 0.97), (1.0, 0.85)]
    assert pareto_front(points) == [0, 1, 4]


def _rows():
    lat = lambda p50: {"p50": p50, "p90": p50, "p99": p50}  # noqa: E731
    return [
        {"name": "hist", "status": "rejected", "accuracy": 0.95, "accuracy_drop": 0.02,
         "latency_ms": lat(1.0), "speedup_vs_fp32": 3.0, "reason": "drop 2.00 points > budget"},
        {"name": "kl", "status": "kept", "chosen": True, "accuracy": 0.968,
         "accuracy_drop": 0.002, "latency_ms": lat(1.1), "speedup_vs_fp32": 2.9,
         "reason": "drop 0.20 points <= budget -> chosen"},
        {"name": "qat", "status": "not_tried", "reason": "'kl' already fits"},
    ]


def test_candidates_plot_writes_a_png(tmp_path):
    base = {"accuracy": 0.97, "latency_ms": {"p50": 3.2}}
    path = candidates_plot(_rows(), base, 0.005, tmp_path / "c.png", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000


def test_report_shows_candidates_and_plot():
    data = {"pipeline": "p", "machine": {}, "deployments": [], "stages": [{
        "stage": "ptq", "type": "ptq", "kind": "inference", "precision": "int8",
        "size_bytes": 2048, "checks": {}, "plots": ["03_ptq/candidates.png"],
        "metrics": {"accuracy": 0.97, "candidates": _rows(), "chosen": "kl",
                    "max_accuracy_drop": 0.005, "latency": {"batch_size": 32}}}]}
    md = markdown(data)
    assert "Budget: 0.50 points; chosen `kl`" in md
    assert ("| kl | kept | 0.9680 | 0.20 | 1.100 | 2.90 | drop 0.20 points <= budget -> "
            "chosen |") in md
    assert "| qat | not_tried | - | - | - | - | 'kl' already fits |" in md
    assert "![ptq candidates.png](03_ptq/candidates.png)" in md
