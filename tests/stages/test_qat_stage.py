"""qat stage: an INT8 inference model whose program holds quant ops, that oneDNN runs with
INT8 kernels, close to the fake-quant model it came from."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from paddleopt.compress.int8_check import program_quant_summary
from paddleopt.stages.pipeline import plan
from paddleopt.utils.errors import ConfigError
from stage_helpers import QUICK_FT, run_stage

# INT8 vs fake-quant dygraph outputs of the tiny digits LeNet (|logits| up to ~10; measured:
# max diff ~12% of the largest |logit|, mean ~1.2%, top-1 agreement ~98%).
MAX_REL, MEAN_REL, AGREE = 0.25, 0.05, 0.9


@pytest.fixture(scope="module")
def qat_art(tiny_checkpoint, tmp_path_factory):
    return run_stage("qat", {"finetune": QUICK_FT, "latency": {"batch_size": 8, "iters": 5,
                                                              "max_seconds": 0.5}},
                     tiny_checkpoint, tmp_path_factory.mktemp("qat"))


def test_int8_model_with_quant_ops(qat_art):
    m = qat_art.manifest
    assert m.kind == "inference" and m.precision == "int8"
    assert m.quantization["method"] == "qat" and m.quantization["quant_ops"] > 0
    summary = program_quant_summary(qat_art.file("model"))
    # default onnx_format false: fake quant-dequant ops (and out_threshold attributes)
    assert summary["quant_op_types"].keys() >= {
        "fake_channel_wise_quantize_dequantize_abs_max",
        "fake_quantize_dequantize_moving_average_abs_max"}
    assert summary["quantized_compute_ops"] == 4  # 2 convs + 2 linears
    assert m.metrics["latency"]["latency_ms"]["p50"] > 0


def test_onednn_runs_int8_kernels(qat_art):
    int8 = qat_art.manifest.checks["int8"]
    assert int8["int8_kernels"] >= 4 and int8["int8_convs"] == 2 and int8["fp32_convs"] == 0


def test_int8_close_to_fake_quant_and_fp32(qat_art, tiny_checkpoint):
    close = qat_art.manifest.checks["int8_vs_fake_quant"]
    assert close["max_rel_diff"] < MAX_REL and close["mean_rel_diff"] < MEAN_REL
    assert close["top1_agreement"] >= AGREE
    m = qat_art.manifest.metrics
    assert m["accuracy"] >= tiny_checkpoint.manifest.metrics["accuracy"] - 0.05
    assert m["fp32_accuracy"] == tiny_checkpoint.manifest.metrics["accuracy"]


def test_paddle_inference_backend_scores_it(qat_art):
    from paddleopt.deploy.accuracy import score_artifact
    from paddleopt.deploy.predictor import load_predictor

    pred = load_predictor(qat_art, "paddle_inference", {"threads": 1})
    assert pred.describe()["onednn_int8"] is True
    scored = score_artifact(pred, qat_art, 100)
    assert scored["accuracy"] > 0.5
    out = pred.run([np.zeros((2, 1, 8, 8), "float32")])[0]
    assert out.shape == (2, 10)


@pytest.mark.parametrize("stage, match", [
    ({"moving_rate": 1.5}, r"moving_rate must be in \(0, 1\)"),
    ({"weight_quantize_type": "per_tensor"}, "'per_tensor' is not allowed"),
    ({"quantizable_layer_types": ["LSTM"]}, "'LSTM' is not allowed"),
    ({"activation_quantize_type": "range_abs_max"}, "'range_abs_max' is not allowed"),
])
def test_bad_config_fails_at_plan(tmp_path, stage, match):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "qat": stage}
    cfg["evaluate"]["targets"] = []
    with pytest.raises(ConfigError, match=match):
        plan(cfg)
