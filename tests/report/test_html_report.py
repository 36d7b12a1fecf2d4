"""report.html next to report.md: plots embedded as PNGs, numbers as in report.json."""
from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser


class _Tables(HTMLParser):
    """Images (alt, src) and the text of each table cell, per table id."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, str]] = []
        self.cells: dict[str, list[str]] = {}
        self._table = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append((a.get("alt", ""), a.get("src", "")))
        elif tag == "table":
            self._table = a.get("id", "")
            self.cells[self._table] = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells[self._table].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_html_report_has_the_plots_and_the_numbers_of_report_json(tiny_run):
    work = tiny_run.report.parent
    data = json.loads((work / "report.json").read_text())
    page = _Tables()
    page.feed((work / "report.html").read_text(encoding="utf-8"))

    alts = [alt for alt, _ in page.images]
    assert "train training curves" in alts
    assert "deployments accuracy vs latency" in alts
    assert "size and latency per backend and precision" in alts
    for _, src in page.images:  # every picture is a real, embedded PNG
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    stage_cells = page.cells["stages"]
    train = next(r for r in data["stages"] if r["stage"] == "train")
    n = train["metrics"]["eval_samples"]
    assert f"{train['metrics']['accuracy']:.4f} (n={n:,})" in stage_cells
    deploy_cells = page.cells["deployments"]
    assert len(data["deployments"]) == 4  # eager and pi at batch 1 and 8
    for row in data["deployments"]:
        assert f"{row['accuracy']:.4f} (n={row['eval_samples']:,})" in deploy_cells
        assert f"{row['latency_ms']['p50']:.3f}" in deploy_cells
        assert f"{row['throughput_per_s']:.1f}" in deploy_cells
    versions = dict(zip(page.cells["versions"][2::2], page.cells["versions"][3::2]))
    assert versions["paddlepaddle"] == data["versions"]["paddlepaddle"]

    md = (work / "report.md").read_text(encoding="utf-8")  # the markdown says n too
    assert f"(n={n:,})" in md and "## Package versions" in md
    # checks are one per line, not a wall of key=value
    assert not re.search(r"\w=\S+, \w+=", md)
