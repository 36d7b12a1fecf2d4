"""`paddleopt check` (exit codes, JSON, -c CONFIG), the pipeline's pre-check before any work,
and the plan-time refusal of conversions that cannot work (int8 on x86, fake-quant to ONNX)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, tiny_config
from paddleopt.deploy.check import EXIT_NOT_DEPLOYABLE
from paddleopt.stages.preflight import input_chain, quantized_by
from paddleopt.utils.errors import ConfigError, UserError

from .conftest import open_artifact


def test_check_deployable_exits_0(cli, model_dirs):
    proc = cli("check", str(model_dirs["mbv2"]), "--target", "arm", "onnx")
    assert proc.returncode == 0, proc.stderr
    assert "arm: deployable" in proc.stdout and "onnx: deployable" in proc.stdout
    assert "relu6.threshold x5" in proc.stdout  # the compat rewrite to_lite will apply


def test_check_unsupported_ops_exit_3_and_json(cli, model_dirs):
    proc = cli("check", str(model_dirs["shuffle"]), "--json")  # default: every target
    assert proc.returncode == EXIT_NOT_DEPLOYABLE == 3, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["target"] for r in results] == ["onnx", "arm", "x86", "opencl"]
    for r in results:
        assert r["supported"] is False and r["unsupported_ops"] == ["channel_shuffle"]
        assert r["fix"]


def test_check_user_errors_exit_2(cli, model_dirs, tmp_path):
    assert cli("check", str(model_dirs["cnn"]), "--target", "tpu").returncode == 2
    assert cli("check", str(tmp_path / "missing")).returncode == 2
    neither = cli("check")
    assert neither.returncode == 2 and "either ARTIFACT or -c CONFIG" in neither.stderr


def test_check_config_needs_no_training(cli, tmp_path):
    work = tmp_path / "w"
    proc = cli("check", "-c", "configs/mobilenet_v2_deploy.yaml", "-o", f"work_dir={work}")
    assert proc.returncode == 0, proc.stderr
    # the config's conversion targets, checked on the untrained model
    assert proc.stdout.startswith("onnx: deployable") and "arm: deployable" in proc.stdout
    assert "x86: deployable" in proc.stdout and "relu6.threshold" in proc.stdout
    assert not work.exists()


def test_tools_check_equals_cli(cli, model_dirs):
    args = [str(model_dirs["cnn"]), "--target", "x86", "--json"]
    via_cli = cli("check", *args)
    via_tool = subprocess.run([sys.executable, "tools/check.py", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
    assert via_tool.returncode == via_cli.returncode == 0
    assert json.loads(via_tool.stdout) == json.loads(via_cli.stdout)


def test_checkpoint_is_checked_through_the_program_export_writes(tiny_checkpoint):
    from paddleopt import api

    result = api.check(tiny_checkpoint.path, "arm")
    assert result.supported and "conv2d" in result.ops
    assert any("checkpoint" in n for n in result.notes)


def test_pipeline_stops_before_training_when_a_target_cannot_take_the_model(
        tmp_path, model_dirs, monkeypatch):
    """The pre-check runs before the first stage; train would take the time, so it must not
    start. (The registry has no model with an unsupported op, so the program is swapped.)"""
    from paddleopt import api
    from paddleopt.artifact.program import read_program
    from paddleopt.stages import preflight

    shuffle = read_program(model_dirs["shuffle"] / "model.pdmodel")
    monkeypatch.setattr(preflight, "untrained_program", lambda *a, **k: shuffle)
    config = tiny_config(tmp_path / "w")
    config["stages"]["to_lite"] = {"target": "arm"}
    with pytest.raises(UserError, match="pre-check: stage 'to_lite' cannot convert") as err:
        api.run(config, evaluate=False)
    assert "channel_shuffle" in err.value.message and "paddleopt check -c" in err.value.fix
    assert not any(p.name.startswith(("01_", ".01_")) for p in (tmp_path / "w").iterdir())


def test_precheck_of_a_real_plan(tmp_path):
    from paddleopt import api

    config = tiny_config(tmp_path / "w")
    config["stages"].update({"to_onnx": {}, "to_lite": {"input": "export", "target": "x86"}})
    results = api.check_config(config)
    assert [r.target for r in results] == ["onnx", "x86"] and all(r.supported for r in results)
    assert [r.target for r in api.check_config(config, targets=["opencl"])] == ["opencl"]


def test_plan_time_refusals(tmp_path):
    """Conversions read the plan's resolved chain (typed configs, defaults filled in)."""
    from paddleopt import api

    def plan(**stages):
        config = tiny_config(tmp_path / "w")
        config["stages"].update(stages)
        return api.plan(config)

    fine = plan(ptq={"onnx_format": True}, to_lite={"target": "arm"},
                fp32_x86={"type": "to_lite", "input": "export", "target": "x86"},
                to_onnx={"input": "ptq"})  # int8 on ARM: fine; fp32_x86 reads the export
    assert [s.stage_id for s in input_chain(fine.steps, "to_lite")] == ["ptq", "export", "train"]
    assert quantized_by(fine.steps, "fp32_x86") is None
    assert quantized_by(fine.steps, "to_onnx").stage_id == "ptq"
    with pytest.raises(ConfigError, match="int8 model of stage 'ptq'"):
        plan(ptq={}, to_lite={"target": "x86"})
    with pytest.raises(ConfigError, match="onnx_format: false"):
        plan(ptq={"onnx_format": False}, to_onnx={})
    qat = tiny_config(tmp_path / "w")
    qat["stages"] = {"train": qat["stages"]["train"], "qat": {}, "to_onnx": {}}
    with pytest.raises(ConfigError, match="stage 'qat'.*onnx_format: false"):
        api.plan(qat)  # qat's default writes fake-quant ops; to_onnx would fail after training


def test_lite_cannot_be_profiled(tiny_deploy_run, tmp_path):
    from paddleopt.deploy.bench import profile
    from paddleopt.deploy.predictor import load_predictor

    art = tiny_deploy_run.artifacts["to_lite_x86"]
    predictor = load_predictor(art, "lite")
    with pytest.raises(UserError, match="cannot be profiled"):
        profile(predictor, [], tmp_path / "t.json")
    assert open_artifact(art.path).kind == "lite"


@pytest.mark.parametrize("to, tool", [("onnx", "paddle2onnx"), ("lite-x86", "Paddle Lite")])
def test_convert_of_an_op_no_converter_takes_exits_2_naming_op_and_fix(cli, model_dirs,
                                                                        tmp_path, to, tool):
    """A plain-Paddle model (no manifest, no config) with channel_shuffle, which neither
    paddle2onnx 1.3.1 nor Lite opt 2.13 converts: `paddleopt convert` stops with exit 2,
    names the op, the tool and the fix, writes no model, and prints no traceback."""
    work = tmp_path / "w"
    proc = cli("convert", str(model_dirs["shuffle"]), "--to", to, "--work-dir", str(work))
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr[proc.stderr.index("error:"):]
    assert f"{tool} cannot convert" in error and "unsupported ops: channel_shuffle" in error
    assert "fix: replace the" in error and "deploy with paddle_inference" in error
    assert f"paddleopt check {model_dirs['shuffle']} --target" in error
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(work.rglob("*.onnx")) and not list(work.rglob("*.nb"))
