"""report.json (the data) and report.md (rendered from it) in a run's work dir."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from paddleopt.artifact import Artifact
from paddleopt.report.formatting import accuracy_text, check_lines, flags, fmt
from paddleopt.utils.errors import UserError

STAGE_METRICS = ("accuracy", "params", "flops", "sparsity", "size_bytes", "train_seconds",
                 "stage_seconds")


def stage_rows(artifacts: list[Artifact]) -> list[dict[str, Any]]:
    rows = []
    for art in artifacts:
        m = art.manifest
        last = m.lineage[-1] if m.lineage else None
        rows.append({
            "stage": last.stage if last else art.path.name,
            "type": last.type if last else "",
            "folder": art.path.name,
            "kind": m.kind,
            "precision": m.precision,
            "size_bytes": art.size_bytes(),
            "metrics": {k: v for k, v in m.metrics.items() if k != "history"},
            "history": m.metrics.get("history") or [],  # per-epoch, for the training curves
            "checks": m.checks,
            # PNGs a stage wrote (role "plot", e.g. ptq's candidates.png), relative to work_dir
            "plots": [f"{art.path.name}/{rel}" for role, rel in m.files.items()
                      if role == "plot"],
        })
    return rows


def write_report(work_dir: Path, plan: Any, artifacts: dict[str, Artifact],
                 deployments: list[dict]) -> Path:
    from paddleopt.utils.machine import machine_info
    from paddleopt.utils.versions import stack_versions

    data = {
        "pipeline": plan.config.name,
        "config": plan.source,
        "work_dir": str(work_dir),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": stack_versions(),
        "stages": stage_rows(list(artifacts.values())),
        "deployments": deployments,
    }
    (work_dir / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    return render_markdown(work_dir)


def render_markdown(work_dir: Path) -> Path:
    """(Re-)render report.md and report.html from report.json, refreshing stages from the
    folders' manifests. Returns report.md's path."""
    from paddleopt.artifact.workdir import stage_artifacts

    work_dir = Path(work_dir)
    path = work_dir / "report.json"
    if not path.is_file():
        raise UserError(f"'{work_dir}' has no report.json.",
                        "pass the work dir of a finished `paddleopt run` "
                        "(e.g. work_dirs/quickstart).")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["stages"] = stage_rows(stage_artifacts(work_dir))
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md = work_dir / "report.md"
    md.write_text(markdown(data), encoding="utf-8")
    from paddleopt.report.html import render_html

    render_html(work_dir, data)
    return md








def candidate_lines(row: dict[str, Any]) -> list[str]:
    m = row["metrics"]
    budget = m.get("max_accuracy_drop")
    lines = [f"Budget: {'none' if budget is None else f'{100 * budget:.2f} points'}; chosen "
             f"`{m.get('chosen')}`. Accuracy on held-out samples, p50 latency per batch of "
             f"{(m.get('latency') or {}).get('batch_size', '?')} (Paddle Inference, oneDNN).", "",
             "| candidate | status | accuracy | drop | p50 ms | speedup | reason |",
             "|---|---|---|---|---|---|---|"]
    for c in m["candidates"]:
        lat = (c.get("latency_ms") or {}).get("p50")
        drop = c.get("accuracy_drop")
        lines.append(f"| {c['name']} | {c.get('status', '-')} | {fmt(c.get('accuracy'))} | "
                     f"{'-' if drop is None else f'{100 * drop:.2f}'} | "
                     f"{'-' if lat is None else f'{lat:.3f}'} | "
                     f"{fmt(c.get('speedup_vs_fp32'), 2)} | {c.get('reason', '')} |")
    return lines




def markdown(data: dict[str, Any]) -> str:
    lines = [f"# paddleopt report: {data['pipeline']}", "",
             f"Config `{data.get('config', '')}`, created {data.get('created', '')}. "
             f"Machine: {data['machine'].get('cpu', '?')}, {data['machine'].get('cores', '?')} "
             f"cores, flags {flags(data['machine'].get('isa', {}))}.", "", "## Stages", "",
             "| stage | type | kind | precision | accuracy | params | FLOPs | size (KB) | checks |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in data["stages"]:
        m = row["metrics"]
        checks = "<br>".join(check_lines(row["checks"])) or "-"
        lines.append(f"| {row['stage']} | {row['type']} | {row['kind']} | {row['precision']} | "
                     f"{accuracy_text(m)} | {fmt(m.get('params'))} | "
                     f"{fmt(m.get('flops'))} | {row['size_bytes'] / 1024:.1f} | {checks} |")
    for row in data["stages"]:
        if row["metrics"].get("candidates"):  # ptq's accuracy-aware search: what was tried
            lines += ["", f"### {row['stage']}: candidates", "", *candidate_lines(row)]
        for plot in row.get("plots", []):
            lines += ["", f"![{row['stage']} {plot.rsplit('/', 1)[-1]}]({plot})"]
    lines += ["", "## Deployments", "",
              "| target | backend | precision | batch | accuracy | p50 ms | p90 ms | p99 ms | "
              "samples/s | size (KB) | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in data["deployments"]:
        lat = row["latency_ms"]
        lines.append(
            f"| {row['variant']} | {row['backend']} | {row['precision']} | {row['batch_size']} | "
            f"{accuracy_text(row)} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | "
            f"{row['throughput_per_s']:.1f} | {row['size_bytes'] / 1024:.1f} | "
            f"{fmt(row.get('peak_rss_mb'), 1)} |")
    lines += ["", "Latency is wall time per `run()` call on the batch; samples/s = batch size x "
              "calls / time. Machines here are shared: compare ratios within one report. "
              "Accuracies are on the n samples shown (stages: their evaluation split; "
              "deployments: `evaluate.eval_samples`). Plots: report.html.", ""]
    if data.get("versions"):
        lines += ["## Package versions", "",
                  ", ".join(f"{k} {v}" for k, v in data["versions"].items()), ""]
    return "\n".join(lines)
