"""bench --backend/--precision picks the fitting artifact of the work dir; --matrix runs every
backend x precision side by side; --profile writes a trace and prints the top ops."""
from __future__ import annotations

import json

import pytest

from paddleopt import api
from paddleopt.artifact.workdir import siblings
from paddleopt.deploy.matrix import matrix, select
from paddleopt.utils.errors import UserError

QUICK = dict(batch_sizes=[1, 4], warmup=1, iters=5, max_seconds=0.5, eval_samples=64)


def _ov_rows() -> tuple:
    """The OpenVINO rows of an fp32 Paddle model (the openvino extra is part of "all")."""
    from paddleopt.deploy.backends import openvino

    if not openvino.is_available():
        return ()
    bf16 = (("ov-default", "openvino", "fp32"),) if openvino.cpu_supports_bf16() else ()
    return (("ov", "openvino", "fp32"), *bf16)


OV_ROWS = _ov_rows()


@pytest.fixture(scope="module")
def arts(tiny_deploy_run):
    return tiny_deploy_run.artifacts


@pytest.fixture(scope="module")
def int8(arts, tmp_path_factory):
    """A PTQ'd copy of the export outside the work dir (what --artifacts adds)."""
    from paddleopt.artifact import Artifact
    from paddleopt.compress.ptq import quantize_post_static
    from paddleopt.deploy.accuracy import eval_data

    export = arts["export"]
    out = tmp_path_factory.mktemp("int8")
    x = eval_data(export, 32)[0][0]
    quantize_post_static(export.path, out, [(x[i:i + 8],) for i in range(0, 32, 8)],
                         algo="abs_max")
    manifest = export.manifest.derive(files={"model": "model.pdmodel",
                                             "params": "model.pdiparams"}, precision="int8")
    manifest.save(out)
    return Artifact.open(out)


def test_siblings_are_the_same_models_artifacts(arts):
    names = [a.path.name for a in siblings(arts["export"])]
    assert names == ["01_train", "02_export", "03_to_onnx", "04_to_lite_arm", "05_to_lite_x86"]


def test_select_by_backend_and_precision(arts, int8):
    export = arts["export"]
    assert select(export, "onnxruntime", None).path == arts["to_onnx"].path
    assert select(export, "lite", "fp32").path == arts["to_lite_x86"].path  # never the ARM one
    assert select(arts["to_onnx"], "paddle_inference", None).path == export.path
    assert select(export, "paddle_inference", "int8", [int8.path]).path == int8.path
    with pytest.raises(UserError, match="nothing to run on paddle_inference int8") as err:
        select(export, "paddle_inference", "int8")
    assert "quantize first" in err.value.fix
    with pytest.raises(UserError, match="unknown precision"):
        select(export, None, "int4")


def test_matrix_lists_every_deployment_and_what_cannot_run(arts, int8):
    deployments, skipped = matrix(arts["export"], [int8.path], threads=1)
    got = {(d.name, d.backend, d.precision) for d in deployments}
    assert got == {("pi-onednn", "paddle_inference", "fp32"),
                   ("pi-native", "paddle_inference", "fp32"),
                   ("ort", "onnxruntime", "fp32"), ("lite-x86", "lite", "fp32"),
                   ("pi-onednn-int8", "paddle_inference", "int8"),
                   ("pi-native-int8", "paddle_inference", "int8"), *OV_ROWS}
    native_int8 = next(d for d in deployments if d.name == "pi-native-int8")
    assert native_int8.options == {"threads": 1, "onednn": False, "onednn_int8": False}
    assert "fake-quant" in native_int8.note
    lite = next(d for d in deployments if d.backend == "lite")
    assert lite.options == {}  # the Python runtime cannot set threads
    reasons = {s.artifact.path.name: s.reason for s in skipped}
    assert "device only" in reasons["04_to_lite_arm"] and "01_train" in reasons
    ov_default = [d for d in deployments if d.name == "ov-default"]
    assert all(d.options == {"threads": 1, "precision": "default"} for d in ov_default)


def test_bench_matrix_rows(arts, tmp_path):
    result = api.bench_matrix(arts["export"].path, threads=1, profile=tmp_path / "p.json",
                              **QUICK)
    rows = result["rows"]
    assert {r["variant"] for r in rows} == {"pi-onednn", "pi-native", "ort", "lite-x86",
                                            *(name for name, _, _ in OV_ROWS)}
    assert {r["batch_size"] for r in rows} == {1, 4}
    accuracies = {r["accuracy"] for r in rows}
    assert len(accuracies) == 1 and accuracies.pop() > 0.5  # every backend: same predictions
    assert (tmp_path / "p.pi-onednn.json").is_file() and (tmp_path / "p.ort.json").is_file()
    assert result["profiles"]["pi-onednn"]["top_ops"]
    assert "cannot be profiled" in result["profiles"]["lite-x86"]["error"]
    table = "\n".join(api.matrix_table(rows))
    assert "| ort | onnxruntime | fp32 | 1 |" in table and "1.00x" in table
    only_ort = api.bench_matrix(arts["export"].path.parent, backend="onnxruntime", **QUICK)
    assert {r["variant"] for r in only_ort["rows"]} == {"ort"}


def test_cli_bench_matrix_and_profile(cli, arts, tmp_path):
    out = tmp_path / "m.json"
    proc = cli("bench", str(arts["export"].path), "--matrix", "--batch-size", "1",
               "--iters", "5", "--max-seconds", "0.5", "--eval-samples", "32", "--threads", "1",
               "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| pi-native | paddle_inference | fp32 | 1 | 1 | off |" in proc.stdout
    assert "not run:" in proc.stdout and "04_to_lite_arm" in proc.stdout
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 4 + len(OV_ROWS) and data["skipped"]

    trace = tmp_path / "trace.json"
    proc = cli("bench", str(arts["export"].path), "--backend", "onnxruntime", "--iters", "5",
               "--max-seconds", "0.5", "--eval-samples", "16", "--profile", str(trace))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "running" in proc.stdout and "03_to_onnx" in proc.stdout
    assert "top ops by total time (onnxruntime" in proc.stdout and "Conv" in proc.stdout
    assert trace.is_file()

    proc = cli("bench", str(arts["export"].path), "--precision", "int8")
    assert proc.returncode == 2 and "quantize first" in proc.stderr
    proc = cli("bench", str(arts["export"].path), "--matrix", "--no-onednn")
    assert proc.returncode == 2 and "--matrix sets the backend options" in proc.stderr


def test_cli_profile_paddle_inference_prints_no_perf_summary(cli, arts, tmp_path):
    proc = cli("bench", str(arts["export"].path), "--iters", "5", "--max-seconds", "0.5",
               "--eval-samples", "16", "--profile", str(tmp_path / "t.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "top ops by total time (paddle.profiler" in proc.stdout
    assert "Perf Summary" not in proc.stdout  # paddle.profiler's own table is swallowed
