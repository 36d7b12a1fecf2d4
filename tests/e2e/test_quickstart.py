"""The quickstart pipeline end to end, shrunk with -o (tiny MNIST subset, 1 epoch)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli

SHRINK = ["-o", "train.epochs=1", "-o", "data.train_subset=3000",
          "-o", "data.batch_size=32", "-o", "data.eval_subset=300",
          "-o", "evaluate.iters=10", "-o", "evaluate.warmup=2", "-o", "evaluate.max_seconds=1",
          "-o", "evaluate.eval_samples=300"]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("qs") / "work"
    proc = run_cli("run", "-c", "configs/quickstart.yaml", "-o", f"work_dir={work}", *SHRINK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc


def test_report_lists_required_deployments(quickstart_run):
    work, proc = quickstart_run
    assert "report:" in proc.stdout
    report = json.loads((work / "report.json").read_text())
    seen = {(r["variant"], r["batch_size"]) for r in report["deployments"]}
    for target in ("eager", "pi-native", "pi-onednn"):
        assert {(target, 1), (target, 32)} <= seen
    native = [r for r in report["deployments"] if r["variant"] == "pi-native"]
    onednn = [r for r in report["deployments"] if r["variant"] == "pi-onednn"]
    assert all(r["onednn"] is False for r in native) and all(r["onednn"] is True for r in onednn)
    for row in report["deployments"]:
        lat = row["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert row["throughput_per_s"] > 0 and row["size_bytes"] > 0
    md = (work / "report.md").read_text()
    assert "pi-onednn" in md and "## Stages" in md


def test_deployed_accuracy_equals_dygraph(quickstart_run):
    work, _ = quickstart_run
    rows = json.loads((work / "report.json").read_text())["deployments"]
    acc = {r["variant"]: r["accuracy"] for r in rows}
    assert acc["eager"] > 0.8  # 3000 samples, 1 epoch: far above chance (0.1)
    assert abs(acc["pi-native"] - acc["eager"]) <= 0.001
    assert abs(acc["pi-onednn"] - acc["eager"]) <= 0.001


def test_export_parity_recorded(quickstart_run):
    work, _ = quickstart_run
    manifest = json.loads((work / "02_export" / "manifest.json").read_text())
    assert manifest["kind"] == "inference"
    assert manifest["checks"]["parity_paddle_inference_vs_dygraph_max_abs_diff"] < 1e-4
    assert manifest["io"]["inputs"][0]["shape"] == [-1, 1, 28, 28]
    assert manifest["preprocess"]["mean"] == [0.1307]
    assert [e["type"] for e in manifest["lineage"]] == ["train", "export"]
    assert manifest["versions"]["paddlepaddle"] == "2.6.2"


def test_infer_bench_and_report_commands(quickstart_run, tmp_path):
    from PIL import Image

    from paddleopt.data.datasets import load_mnist

    work, _ = quickstart_run
    test = load_mnist().test
    paths = []
    for i in range(4):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((test.images[i, 0] * 255).round().astype(np.uint8)).save(path)
        paths.append(str(path))
    proc = run_cli("infer", str(work / "02_export"), *paths, "--json")
    assert proc.returncode == 0, proc.stderr
    preds = [r["predictions"][0]["label"] for r in json.loads(proc.stdout)]
    truth = [str(int(y)) for y in test.labels[:4]]
    assert sum(p == t for p, t in zip(preds, truth)) >= 3

    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(work / "02_export"), "--batch-size", "1", "4", "--iters", "10",
                   "--eval-samples", "200", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch_size"] for r in rows] == [1, 4] and rows[0]["accuracy"] > 0.8

    (work / "report.md").unlink()
    proc = run_cli("report", str(work))
    assert proc.returncode == 0 and (work / "report.md").is_file()


def test_tools_scripts_match_cli(quickstart_run):
    import subprocess
    import sys

    from conftest import REPO

    work, _ = quickstart_run
    proc = subprocess.run([sys.executable, "tools/bench.py", str(work / "02_export"),
                           "--iters", "5", "--eval-samples", "50"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "paddle_inference" in proc.stdout and "samples/s" in proc.stdout
