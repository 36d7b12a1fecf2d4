"""to_lite: pre-check, compat rewrite, opt in a child, x86 parity, and the lite backend."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from paddleopt.artifact import Artifact
from paddleopt.config.schema import parse
from paddleopt.deploy.predictor import load_predictor
from paddleopt.stages.to_lite import ToLiteConfig, ToLiteStage
from paddleopt.utils.errors import ConfigError, UserError

from .conftest import SHAPES, open_artifact, paddle_outputs, stage_context


def run_stage(src_dir, out_dir, tmp_path, **config):
    stage = ToLiteStage(parse(ToLiteStage.Config, config))
    manifest = stage.run(open_artifact(src_dir), out_dir, stage_context(tmp_path))
    manifest.save(out_dir)  # what the pipeline does after run()
    return Artifact.open(out_dir)


@pytest.fixture(scope="module")
def lite_x86(model_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("to_lite_x86")
    return run_stage(model_dirs["mbv2"], tmp / "out", tmp, target="x86")


@pytest.fixture(scope="module")
def lite_arm_int8(int8_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("to_lite_arm_int8")
    return run_stage(int8_dirs["fake"], tmp / "out", tmp, target="arm")


def test_x86_manifest_and_parity(lite_x86):
    m = lite_x86.manifest
    assert m.kind == "lite" and m.files == {"model": "model.nb"} and m.precision == "fp32"
    lite = m.checks["lite"]
    assert lite["target"] == "x86" and lite["opt_version"] == "2.13rc0"
    assert lite["compat_rewrite"] == {"flatten_contiguous_range.XShape": 1,
                                      "relu6.threshold": 5}
    assert lite["nb_size_bytes"] == lite_x86.file("model").stat().st_size > 0
    assert lite["int8_kernels"] is False and lite["calib_ops"] == 0
    assert lite["optimized_ops"]["conv2d"] == 5
    assert m.checks["parity_lite_vs_paddle_inference_max_abs_diff"] < 1e-4
    assert sorted(p.name for p in lite_x86.path.iterdir()) == ["manifest.json", "model.nb"]


def test_backend_runs_x86_nb_in_process(lite_x86, model_dirs):
    x = np.random.default_rng(3).standard_normal((5, *SHAPES["mbv2"])).astype(np.float32)
    expected = paddle_outputs(model_dirs["mbv2"], x)
    predictor = load_predictor(lite_x86, "lite")
    first = predictor.run([x])[0]
    predictor.run([x[:1]])  # outputs are copies: a later run must not change ``first``
    np.testing.assert_allclose(first, expected, atol=1e-4)
    np.testing.assert_allclose(predictor.clone().run([x])[0], expected, atol=1e-4)
    isolated = load_predictor(lite_x86, "lite", {"isolate": True}).run([x])[0]
    np.testing.assert_allclose(isolated, expected, atol=1e-4)
    assert predictor.describe()["target"] == "x86"


def test_backend_refuses_options_the_binding_lacks(lite_x86):
    with pytest.raises(UserError, match="set_threads"):
        load_predictor(lite_x86, "lite", {"threads": 2})


def test_backend_refuses_corrupt_nb(lite_x86, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(lite_x86.path, copy)
    nb = copy / "model.nb"
    nb.write_bytes(nb.read_bytes()[:100])  # truncated: Lite would abort; sha256 catches it
    with pytest.raises(UserError, match="does not match the sha256"):
        load_predictor(Artifact.open(copy), "lite")


def test_arm_int8(lite_arm_int8):
    m = lite_arm_int8.manifest
    assert m.precision == "int8" and m.checks["lite"]["target"] == "arm"
    assert m.checks["lite"]["int8_kernels"] is True and m.checks["lite"]["calib_ops"] > 0
    assert "not run" in m.checks["parity_lite_vs_paddle_inference"]
    with pytest.raises(UserError, match="only run x86"):
        load_predictor(lite_arm_int8, "lite")


def test_opencl_fp32(model_dirs, tmp_path):
    art = run_stage(model_dirs["cnn"], tmp_path / "out", tmp_path, target="opencl")
    assert art.manifest.checks["lite"]["target"] == "opencl"
    assert art.manifest.checks["lite"]["compat_rewrite"]["flatten_contiguous_range.XShape"] == 1


def test_int8_x86_refused_before_opt(int8_dirs, tmp_path):
    with pytest.raises(UserError) as info:
        run_stage(int8_dirs["qdq"], tmp_path / "out", tmp_path, target="x86")
    assert "NaN/garbage" in str(info.value) and "fp32" in info.value.fix
    assert not (tmp_path / "out" / "model.nb").exists()


def test_without_rewrite_opt_fails_and_we_survive(model_dirs, tmp_path):
    with pytest.raises(UserError) as info:
        run_stage(model_dirs["mbv2"], tmp_path / "out", tmp_path, target="arm",
                  compat_rewrite=False)
    assert "No attributes called threshold found for relu6" in str(info.value)


def test_config_validation():
    assert parse(ToLiteConfig, {}).target == "arm"
    with pytest.raises(ConfigError, match="fp16 applies to target arm only"):
        parse(ToLiteConfig, {"target": "x86", "fp16": True})
    with pytest.raises(ConfigError, match="plain file name"):
        parse(ToLiteConfig, {"optimize_out": "../model"})
    with pytest.raises(ConfigError):
        parse(ToLiteConfig, {"target": "riscv"})


def test_parity_on_eval_data_when_the_manifest_names_it(digits_artifact_dir, tmp_path):
    art = run_stage(digits_artifact_dir, tmp_path / "out", tmp_path, target="x86",
                    parity_samples=16)
    checks = art.manifest.checks
    assert checks["parity_inputs"] == "eval data" and checks["parity_samples"] == 16
    assert checks["parity_lite_vs_paddle_inference_max_abs_diff"] < 1e-4
    assert art.manifest.dataset["name"] == "digits"  # carried over for evaluation


def test_arm_fp16(model_dirs, tmp_path):
    art = run_stage(model_dirs["mbv2"], tmp_path / "out", tmp_path, target="arm", fp16=True)
    lite = art.manifest.checks["lite"]
    assert art.manifest.precision == "fp16" and lite["target"] == "arm"
    assert lite["calib_ops"] > 0 and lite["int8_kernels"] is False  # fp16 <-> fp32 calibs


def test_x86_parity_instance_norm_swish(model_dirs, tmp_path):
    art = run_stage(model_dirs["norm_swish"], tmp_path / "out", tmp_path, target="x86")
    assert art.manifest.checks["parity_lite_vs_paddle_inference_max_abs_diff"] < 1e-4
