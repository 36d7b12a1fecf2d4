"""to_onnx: paddle2onnx in a child, batch naming, parity against Paddle Inference, int8 QDQ."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.artifact import Artifact, Manifest
from paddleopt.config.schema import parse
from paddleopt.export.onnx_convert import convert
from paddleopt.export.parity import measure
from paddleopt.stages.to_onnx import ToOnnxConfig, ToOnnxStage
from paddleopt.utils.errors import ConfigError, UserError

from .conftest import SHAPES, open_artifact, paddle_outputs, stage_context


def run_stage(src_dir, out_dir, tmp_path, **config):
    stage = ToOnnxStage(parse(ToOnnxStage.Config, config))
    manifest = stage.run(open_artifact(src_dir), out_dir, stage_context(tmp_path))
    manifest.save(out_dir)  # what the pipeline does after run()
    return Artifact.open(out_dir)


@pytest.fixture(scope="module")
def cnn_onnx(model_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("to_onnx_cnn")
    return run_stage(model_dirs["cnn"], tmp / "out", tmp)


@pytest.fixture(scope="module")
def mbv2_fixed_onnx(model_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("to_onnx_mbv2")
    return run_stage(model_dirs["mbv2"], tmp / "out", tmp, dynamic_batch=False, batch_size=2)


@pytest.fixture(scope="module")
def qdq_onnx(int8_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("to_onnx_qdq")
    return run_stage(int8_dirs["qdq"], tmp / "out", tmp)


def test_fp32_manifest_and_parity(cnn_onnx, model_dirs):
    m = cnn_onnx.manifest
    assert m.kind == "onnx" and m.files == {"model": "model.onnx"} and m.precision == "fp32"
    assert m.checks["onnx_opset"] == 13
    diff = m.checks["parity_onnxruntime_vs_paddle_inference_max_abs_diff"]
    assert 0 <= diff < 1e-4 and m.checks["parity_inputs"] == "random"
    assert m.io.inputs[0].shape == [-1, 1, 28, 28]
    # The artifact runs on the onnxruntime backend and agrees with Paddle Inference.
    from paddleopt.deploy.predictor import load_predictor

    x = np.random.default_rng(5).standard_normal((3, *SHAPES["cnn"])).astype(np.float32)
    out = load_predictor(cnn_onnx, "onnxruntime", {"threads": 1}).run([x])[0]
    np.testing.assert_allclose(out, paddle_outputs(model_dirs["cnn"], x), atol=1e-4)


def test_batch_dimension_named(cnn_onnx):
    import onnx

    model = onnx.load(str(cnn_onnx.file("model")))
    first = [v.type.tensor_type.shape.dim[0].dim_param for v in
             [*model.graph.input, *model.graph.output]]
    assert first == ["batch", "batch"]  # paddle2onnx wrote DynamicDimension.0 / .1


def test_fixed_batch(mbv2_fixed_onnx):
    import onnx

    m = mbv2_fixed_onnx.manifest
    assert m.io.inputs[0].shape == [2, 3, 32, 32] and m.checks["parity_samples"] == 2
    model = onnx.load(str(mbv2_fixed_onnx.file("model")))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert m.checks["parity_onnxruntime_vs_paddle_inference_max_abs_diff"] < 1e-4


def test_int8_qdq(qdq_onnx):
    m = qdq_onnx.manifest
    assert m.precision == "int8" and m.quantization["format"] == "onnx_qdq"
    assert m.quantization["quantize_linear_nodes"] > 0
    assert m.quantization["dequantize_linear_nodes"] > 0
    # random inputs (no dataset recorded): an int8 model's decisions are recorded, not judged
    assert m.checks["parity_inputs"] == "random"
    assert m.checks["parity_onnxruntime_vs_paddle_inference_metric"] == "agreement"
    assert 0 <= m.checks["parity_onnxruntime_vs_paddle_inference_agreement"] <= 1
    assert m.checks["parity_onnxruntime_vs_paddle_inference_judged"].startswith("no: int8")
    assert m.checks["parity_onnxruntime_vs_paddle_inference_relative_diff"] < 0.1
    assert m.checks["onnx_opset"] >= 13


def test_fake_quant_model_fails_with_reason(int8_dirs, tmp_path):
    with pytest.raises(UserError) as info:
        run_stage(int8_dirs["fake"], tmp_path / "out", tmp_path)
    assert "fake_quantize_range_abs_max" in str(info.value)
    assert "onnx_format: true" in info.value.fix


def test_unsupported_op_fails_before_converting(model_dirs, tmp_path):
    with pytest.raises(UserError, match="unsupported ops: channel_shuffle"):
        run_stage(model_dirs["shuffle"], tmp_path / "out", tmp_path)
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_paddle2onnx_abort_is_isolated(model_dirs, tmp_path):
    """paddle2onnx aborts the process on an unsupported op; in a child that is a UserError."""
    d = model_dirs["shuffle"]
    with pytest.raises(UserError) as info:
        convert(d / "model.pdmodel", d / "model.pdiparams", tmp_path / "m.onnx")
    assert "SIGABRT" in str(info.value) and "unsupported ops: channel_shuffle" in str(info.value)


def test_tolerance_enforced():
    def check(diff, expected, int8=False, inputs="eval data"):
        actual = [e + np.float32(diff) for e in expected]
        return measure("onnxruntime", "paddle_inference", expected, actual, expected, inputs,
                       1e-4, 0.1 if int8 else None).enforce(m)

    m = Manifest(kind="onnx")
    ref = [np.ones((2, 3), np.float32)]
    check(5e-5, ref)
    with pytest.raises(UserError, match="differs from Paddle Inference by 0.0002"):
        check(2e-4, ref)
    big = [np.full((2, 3), 50.0, np.float32)]  # large logits: the tolerance scales with them
    check(2e-3, big)
    assert m.checks["parity_onnxruntime_vs_paddle_inference_output_scale"] == 50.0
    with pytest.raises(UserError, match="20.0% of the output range"):
        check(0.2, [np.ones((2, 1), np.float32)], int8=True)  # no class axis: relative diff
    tiny = [np.full((2, 1), 1e-7, np.float32)]  # untrained net: relative diff means nothing
    check(5e-8, tiny, int8=True)
    with pytest.raises(UserError, match="NaN"):
        check(float("nan"), ref)


def test_int8_parity_is_judged_by_agreement_on_real_inputs():
    """A deep int8 model's scores move by most of their range while its decisions stay (the
    PP-OCRv4 recogniser: 74% of the range): agreement on real inputs judges it; on random
    inputs the numbers are only recorded."""
    m = Manifest(kind="onnx")
    rng = np.random.default_rng(0)
    ref = [rng.standard_normal((40, 10)).astype(np.float32)]
    ref[0][np.arange(40), rng.integers(0, 10, 40)] += 5.0  # clear winners
    moved = [ref[0] * 1.6]  # 60% of the range off, same argmax everywhere
    result = measure("onnxruntime", "paddle_inference", ref, moved, ref, "eval data", 1e-4, 0.1)
    assert result.relative_diff > 0.5 and result.agreement == 1.0
    result.enforce(m)
    assert m.checks["parity_onnxruntime_vs_paddle_inference_metric"] == "agreement"
    flipped = [moved[0].copy()]
    flipped[0][:4] = -flipped[0][:4]  # 4 of 40 decisions change: 90% < 95%
    with pytest.raises(UserError, match=r"keeps 90\.0% .*top1_agreement.*40 real inputs"):
        measure("onnxruntime", "paddle_inference", ref, flipped, ref, "eval data", 1e-4,
                0.1).enforce(m)
    measure("onnxruntime", "paddle_inference", ref, flipped, ref, "random", 1e-4,
            0.1).enforce(m)  # random inputs: recorded only
    assert "random" in m.checks["parity_onnxruntime_vs_paddle_inference_judged"]
    assert m.checks["parity_onnxruntime_vs_paddle_inference_agreement"] == 0.9


def test_config_validation():
    assert parse(ToOnnxConfig, {}).opset_version == 13
    with pytest.raises(ConfigError, match=r"\[7, 19\]"):
        parse(ToOnnxConfig, {"opset_version": 20})
    with pytest.raises(ConfigError, match="unknown key"):
        parse(ToOnnxConfig, {"opset": 13})
