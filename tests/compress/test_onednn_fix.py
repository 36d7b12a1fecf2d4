"""The ResNet pooling fix: INT8 models of residual networks run under oneDNN INT8."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from paddleopt.artifact.program import read_program
from paddleopt.compress.int8_check import int8_kernel_report
from paddleopt.compress.onednn_fix import apply_onednn_int8_fixes, residual_pools
from paddleopt.compress.ptq import quantize_post_static

from .conftest import paddle, run_inference
from paddleopt.utils.jit import save_layer


@pytest.fixture(scope="module")
def resnet_int8(tmp_path_factory):
    from paddleopt.models.registry import build_model

    paddle.seed(0)
    model = build_model({"arch": "resnet_small", "num_classes": 10, "in_channels": 1,
                         "kwargs": {"widths": [8, 16, 16]}})
    model.eval()
    fp32 = tmp_path_factory.mktemp("resnet_fp32")
    save_layer(model, str(fp32 / "model"), input_spec=[
        paddle.static.InputSpec([None, 1, 8, 8], "float32", "x")])
    int8 = tmp_path_factory.mktemp("resnet_int8")
    rng = np.random.default_rng(0)
    report = quantize_post_static(fp32, int8, [rng.random((8, 1, 8, 8), "float32")],
                                  algo="abs_max")
    return fp32, int8, report


def _skip_quant(model_file) -> list[int]:
    return [a.i for op in read_program(model_file).blocks[0].ops if op.type == "pool2d"
            for a in op.attrs if a.name == "skip_quant"]


def test_ptq_marks_the_pool_after_a_residual_sum(resnet_int8):
    _, int8, report = resnet_int8
    assert len(report.onednn_fixes) == 1 and "pool2d" in report.onednn_fixes[0]
    assert _skip_quant(int8 / "model.pdmodel") == [1]
    assert len(residual_pools(read_program(int8 / "model.pdmodel"))) == 1
    assert apply_onednn_int8_fixes(int8 / "model.pdmodel") == []  # idempotent


def test_fixed_model_runs_int8_convs_close_to_fp32(resnet_int8):
    fp32, int8, _ = resnet_int8
    x = np.random.default_rng(1).random((4, 1, 8, 8), "float32")
    ref = run_inference(fp32, [x])
    got = run_inference(int8, [x], int8=True)
    assert np.abs(got - ref).max() / np.abs(ref).max() < 0.25
    kernels = int8_kernel_report(int8)
    assert kernels["int8_convs"] == kernels["quantized_compute_ops"] - 1  # all convs (+ fc)
    assert kernels["fp32_convs"] == 0


def test_without_the_fix_paddle_2_6_fails(resnet_int8, tmp_path):
    """Documents the Paddle 2.6.2 / oneDNN 3.2 bug the fix works around: if this starts
    passing without the fix, Paddle fixed it and the rewrite can go."""
    _, int8, _ = resnet_int8
    broken = tmp_path / "broken"
    shutil.copytree(int8, broken)
    program = read_program(broken / "model.pdmodel")
    for op in program.blocks[0].ops:
        for attr in [a for a in op.attrs if a.name == "skip_quant"]:
            op.attrs.remove(attr)
    (broken / "model.pdmodel").write_bytes(program.SerializeToString())
    with pytest.raises(Exception, match="could not create a descriptor for a pooling"):
        run_inference(broken, [np.zeros((1, 1, 8, 8), "float32")], int8=True)


def test_plain_cnn_is_left_alone(fp32_model_dir, tmp_path):
    out = tmp_path / "int8"
    report = quantize_post_static(fp32_model_dir, out, [np.zeros((4, 1, 8, 8), "float32")],
                                  algo="abs_max")
    assert report.onednn_fixes == [] and _skip_quant(out / "model.pdmodel") == []


@pytest.mark.parametrize("onnx_format, fp32_convs", [(False, 0), (True, 2)])
def test_qat_format_decides_whether_residual_blocks_stay_int8(onnx_format, fp32_convs,
                                                               tmp_path):
    """Why the qat stage defaults to onnx_format false: only the older format records the
    activation ranges (out_threshold) of every layer, which oneDNN needs to keep the convs
    that sum a residual branch in INT8."""
    from paddleopt.compress.qat import QATConfig, quantize_for_training, save_int8_model
    from paddleopt.models.registry import build_model

    paddle.seed(0)
    model = build_model({"arch": "resnet_small", "num_classes": 10, "in_channels": 1,
                         "kwargs": {"widths": [8, 16, 16]}})
    qat = quantize_for_training(model, QATConfig(onnx_format=onnx_format))
    opt = paddle.optimizer.SGD(0.01, parameters=model.parameters())
    model.train()
    for _ in range(2):
        model(paddle.rand([8, 1, 8, 8])).mean().backward()
        opt.step()
        opt.clear_grad()
    summary = save_int8_model(qat, model, tmp_path, [{"name": "x", "shape": [-1, 1, 8, 8]}])
    assert len(summary["onednn_fixes"]) == 1  # the residual pool, in both formats
    kernels = int8_kernel_report(tmp_path)
    assert kernels["fp32_convs"] == fp32_convs and kernels["int8_convs"] == 9 - fp32_convs
