"""The deployability pre-check: unsupported ops and known blockers per target."""
from __future__ import annotations

import pytest

from paddleopt.artifact import Artifact, Manifest
from paddleopt.deploy.check import check_artifact, normalize_target, paddle2onnx_ops
from paddleopt.utils.errors import UserError

from .conftest import open_artifact


def test_fp32_models_deployable_everywhere(model_dirs):
    for name in ("cnn", "mbv2"):
        art = open_artifact(model_dirs[name])
        for target in ("onnx", "arm", "x86", "opencl"):
            result = check_artifact(art, target)
            assert result.supported, result.describe()
            assert result.unsupported_ops == [] and result.problems == []
            assert "conv2d" in result.ops and "feed" not in result.ops


def test_lite_result_announces_the_compat_rewrite(model_dirs):
    result = check_artifact(open_artifact(model_dirs["mbv2"]), "arm")
    assert any("relu6.threshold x5" in n for n in result.notes)
    assert result.tool.startswith("paddle_lite_opt 2.13rc0")


def test_unsupported_op_listed_for_lite_and_onnx(model_dirs):
    art = open_artifact(model_dirs["shuffle"])
    for target in ("arm", "x86", "onnx"):
        result = check_artifact(art, target)
        assert not result.supported and result.unsupported_ops == ["channel_shuffle"]
        assert "channel_shuffle" in result.reason() and result.fix
    text = check_artifact(art, "arm").describe()
    assert "NOT deployable" in text and "unsupported ops: channel_shuffle" in text


def test_known_opt_crash_is_a_problem(model_dirs):
    result = check_artifact(open_artifact(model_dirs["layernorm"]), "x86")
    assert not result.supported and result.unsupported_ops == []
    assert "layer_norm without Scale/Bias" in result.problems[0]
    assert check_artifact(open_artifact(model_dirs["layernorm"]), "onnx").supported


def test_int8_fake_quant(int8_dirs):
    art = open_artifact(int8_dirs["fake"])
    assert art.manifest.precision == "int8"
    onnx = check_artifact(art, "onnx")
    assert not onnx.supported and "onnx_format: true" in onnx.problems[0]
    assert "fake_quantize_range_abs_max" in onnx.unsupported_ops
    assert "onnx_format: true" in onnx.fix
    x86 = check_artifact(art, "x86")
    assert not x86.supported and "NaN/garbage" in x86.problems[0] and "fp32" in x86.fix
    arm = check_artifact(art, "arm")
    assert arm.supported and any("int8 on arm" in n for n in arm.notes)


def test_int8_qdq_exports_to_onnx(int8_dirs):
    result = check_artifact(open_artifact(int8_dirs["qdq"]), "onnx")
    assert result.supported and any("QDQ" in n for n in result.notes)
    assert {"quantize_linear", "dequantize_linear"} <= paddle2onnx_ops()


def test_targets_and_kinds(tmp_path):
    assert normalize_target("lite-arm") == "arm" and normalize_target("ONNX") == "onnx"
    with pytest.raises(UserError, match="unknown deployment target"):
        normalize_target("tpu")
    ckpt = Artifact(tmp_path, Manifest(kind="checkpoint"))
    with pytest.raises(UserError, match="export it first"):
        check_artifact(ckpt, "arm")
