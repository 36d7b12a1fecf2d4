"""The benchmark contract shared by every suite (see docs/BENCHMARKS.md).

`benchmarks/<suite>.py [--quick] --out FILE.json` measures rows side by side in one process and
writes {"suite", "machine", "rows"}; it then renders its own section of docs/BENCHMARKS.md
between `<!-- suite:NAME -->` markers (skipped with --quick, which is for tests).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROW_KEYS = ("model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb")


def parse_args(suite: str, doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help="tiny version for tests (seconds)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / f"{suite}.json"))
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/BENCHMARKS.md")
    return parser.parse_args()


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ROW_KEYS if k not in row]
    if missing:
        raise ValueError(f"benchmark row lacks {missing}: {row}")
    return row


def write_results(suite: str, rows: list[dict], out: str, extra: dict | None = None) -> dict:
    from paddleopt.deploy.bench import machine_info

    data = {"suite": suite,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "rows": [normalize_row(r) for r in rows], **(extra or {})}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return data


def rows_table(rows: list[dict], extra_cols: tuple[str, ...] = ()) -> list[str]:
    head = ["model", "variant", "backend", "precision", "batch", "threads", "oneDNN",
            "p50 ms", "p99 ms", "samples/s", "accuracy", "size KB", "peak RSS MB", *extra_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        onednn = "-" if r["onednn"] is None else ("on" if r["onednn"] else "off")
        cells = [r["model"], r["variant"], r["backend"], r["precision"], str(r["batch_size"]),
                 str(r["threads"] if r["threads"] is not None else "-"), onednn,
                 f"{r['latency_ms']['p50']:.3f}", f"{r['latency_ms']['p99']:.3f}",
                 f"{r['throughput_per_s']:.1f}", acc, f"{r['size_bytes'] / 1024:.1f}",
                 f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "-",
                 *[str(r.get(c, "-")) for c in extra_cols]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _isa_flags(isa: dict | list) -> str:
    """The ISA extensions the CPU has (the machine record maps every flag to true/false)."""
    flags = [k for k, v in isa.items() if v] if isinstance(isa, dict) else list(isa)
    return ", ".join(flags) or "no ISA flags recorded"


def render_section(suite: str, data: dict, body: Callable[[dict], list[str]]) -> None:
    """Replace this suite's section in docs/BENCHMARKS.md (other suites are untouched)."""
    doc = REPO / "docs" / "BENCHMARKS.md"
    text = doc.read_text(encoding="utf-8") if doc.is_file() else \
        "# Benchmarks\n\nEvery number here is written by a script under benchmarks/.\n"
    m = data["machine"]
    section = [f"<!-- suite:{suite} -->", f"## {suite}", "",
               f"`python benchmarks/{suite}.py` on {data['created']}: {m.get('cpu', '?')}, "
               f"{m.get('cores', '?')} cores ({_isa_flags(m.get('isa', {}))}). Shared machine: "
               f"read ratios, not absolute numbers.", "", *body(data), f"<!-- /suite:{suite} -->"]
    start, end = f"<!-- suite:{suite} -->", f"<!-- /suite:{suite} -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + "\n".join(section) + after
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    doc.write_text(text, encoding="utf-8")
    print(f"updated {doc} (section {suite})")
