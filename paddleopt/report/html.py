"""report.html: the same data as report.md (report.json), with the pictures embedded so the
one file can be mailed or attached to a ticket."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from paddleopt.report import charts

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>paddleopt report: {{ d.pipeline }}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222 }
 table { border-collapse: collapse; margin: 1em 0; font-size: 14px }
 th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top }
 th { background: #f3f3f3 } td.num { text-align: right; font-variant-numeric: tabular-nums }
 .checks { font-size: 12px; color: #444 } figure { margin: 1em 0 } img { max-width: 100% }
 .note { color: #666; font-size: 13px }
</style></head><body>
<h1>paddleopt report: {{ d.pipeline }}</h1>
<p>Config <code>{{ d.config }}</code>, created {{ d.created }}.
Machine: {{ d.machine.cpu or "?" }}, {{ d.machine.cores or "?" }} cores, flags {{ flags }}.</p>

<h2>Stages</h2>
<table id="stages"><tr><th>stage</th><th>type</th><th>kind</th><th>precision</th>
<th>accuracy</th><th>params</th><th>FLOPs</th><th>size (KB)</th><th>checks</th></tr>
{% for row in d.stages %}<tr><td>{{ row.stage }}</td><td>{{ row.type }}</td>
<td>{{ row.kind }}</td><td>{{ row.precision }}</td>
<td class="num accuracy">{{ accuracy(row.metrics) }}</td>
<td class="num">{{ fmt(row.metrics.params) }}</td><td class="num">{{ fmt(row.metrics.flops) }}</td>
<td class="num">{{ "%.1f" % (row.size_bytes / 1024) }}</td>
<td class="checks">{% for line in check_lines(row.checks) %}{{ line }}<br>{% endfor %}</td></tr>
{% endfor %}</table>
<p class="note">Accuracy is on the number of samples n shown next to it (a stage evaluates on its
evaluation split; deployments on <code>evaluate.eval_samples</code>), so numbers measured on
different n differ by sampling alone.</p>

{% for fig in stage_figures %}<figure>
<img alt="{{ fig.alt }}" src="data:image/png;base64,{{ fig.png }}">
<figcaption class="note">{{ fig.caption }}</figcaption></figure>
{% endfor %}

<h2>Deployments</h2>
{% if d.deployments %}
<table id="deployments"><tr><th>target</th><th>backend</th><th>precision</th><th>batch</th>
<th>accuracy</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>samples/s</th>
<th>size (KB)</th><th>peak RSS MB</th></tr>
{% for row in d.deployments %}<tr><td>{{ row.variant }}</td><td>{{ row.backend }}</td>
<td>{{ row.precision }}</td><td class="num">{{ row.batch_size }}</td>
<td class="num accuracy">{{ accuracy(row) }}</td>
<td class="num">{{ "%.3f" % row.latency_ms.p50 }}</td>
<td class="num">{{ "%.3f" % row.latency_ms.p90 }}</td>
<td class="num">{{ "%.3f" % row.latency_ms.p99 }}</td>
<td class="num">{{ "%.1f" % row.throughput_per_s }}</td>
<td class="num">{{ "%.1f" % (row.size_bytes / 1024) }}</td>
<td class="num">{{ fmt(row.peak_rss_mb, 1) }}</td></tr>
{% endfor %}</table>
{% for fig in deploy_figures %}<figure>
<img alt="{{ fig.alt }}" src="data:image/png;base64,{{ fig.png }}">
<figcaption class="note">{{ fig.caption }}</figcaption></figure>
{% endfor %}
<p class="note">Latency is wall time per <code>run()</code> call on the batch; samples/s = batch
size x calls / time. Machines here are shared: compare ratios within one report.</p>
{% else %}<p>No deployments were evaluated.</p>{% endif %}

<h2>Package versions</h2>
<table id="versions"><tr><th>package</th><th>version</th></tr>
{% for name, version in versions.items() %}<tr><td>{{ name }}</td><td>{{ version }}</td></tr>
{% endfor %}</table>
</body></html>
"""


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _figures(work_dir: Path, data: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    stage_figs = []
    for row in data["stages"]:
        if row.get("history"):
            png = charts.training_curves(row["stage"], row["history"])
            if png:
                stage_figs.append({"alt": f"{row['stage']} training curves", "png": _b64(png),
                                   "caption": f"{row['stage']}: loss and evaluation accuracy "
                                              f"per epoch (from the recorded history)."})
        for plot in row.get("plots", []):  # PNGs a stage wrote, e.g. ptq's candidates.png
            path = work_dir / plot
            if path.is_file():
                stage_figs.append({"alt": f"{row['stage']} {path.name}",
                                   "png": _b64(path.read_bytes()),
                                   "caption": f"{row['stage']}: {path.name}"})
    deploy_figs = []
    rows = data.get("deployments") or []
    for alt, png, caption in (
            ("deployments accuracy vs latency", charts.deployments_pareto(rows),
             "Every deployment's accuracy against its p50 latency per sample; the line joins "
             "those no other deployment beats on both."),
            ("size and latency per backend and precision", charts.size_latency_bars(rows),
             "Size on disk per deployment and p50 latency per batch.")):
        if png:
            deploy_figs.append({"alt": alt, "png": _b64(png), "caption": caption})
    return stage_figs, deploy_figs


def render_html(work_dir: Path, data: dict[str, Any]) -> Path:
    """Write ``work_dir/report.html`` from the report data (the dict in report.json)."""
    from jinja2 import Environment, select_autoescape

    from paddleopt.report.formatting import accuracy_text, check_lines, flags, fmt
    from paddleopt.utils.versions import stack_versions

    stage_figs, deploy_figs = _figures(work_dir, data)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(TEMPLATE).render(
        d=data, flags=flags(data["machine"].get("isa", {})),
        versions=data.get("versions") or stack_versions(),
        stage_figures=stage_figs, deploy_figures=deploy_figs, fmt=fmt,
        accuracy=accuracy_text, check_lines=check_lines)
    path = work_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return path
