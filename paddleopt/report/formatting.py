"""How the reports (report.md, report.html) write numbers, accuracies, checks and CPU flags."""
from __future__ import annotations

from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def accuracy_text(metrics: dict[str, Any]) -> str:
    """'0.9887 (n=10,000)': an accuracy with the number of samples it was measured on."""
    acc = metrics.get("accuracy")
    if acc is None:
        return "-"
    n = metrics.get("eval_samples")
    return f"{acc:.4f}" + (f" (n={n:,})" if isinstance(n, int) else "")


def check_lines(checks: dict[str, Any]) -> list[str]:
    """One 'key: value' per scalar check (nested ones are in manifest.json)."""
    return [f"{k}: {fmt(v, 6) if isinstance(v, float) else v}" for k, v in checks.items()
            if not isinstance(v, (dict, list))]


def flags(isa: dict[str, bool] | list[str]) -> str:
    from paddleopt.utils.machine import present_flags

    return ", ".join(present_flags(isa)) or "none recorded"
