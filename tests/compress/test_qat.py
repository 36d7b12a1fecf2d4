"""QAT: quantize in place, fine-tune, export an INT8 model that runs INT8 kernels."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.compress.int8_check import int8_kernel_report
from paddleopt.compress.qat import QATConfig, quantize_for_training, save_int8_model
from paddleopt.utils.errors import UserError

from .conftest import IMAGE_SPEC, accuracy, nn, paddle, run_inference, train


def test_qat_finetune_and_int8_export(trained_cnn, digits, tmp_path):
    fp32_acc = accuracy(trained_cnn, digits["x_val"], digits["y_val"])
    qat = quantize_for_training(trained_cnn)
    assert "QuantizedConv2D" in repr(trained_cnn) and "QuantizedLinear" in repr(trained_cnn)
    train(trained_cnn, digits["x_train"][:512], digits["y_train"][:512], epochs=1, lr=1e-3)
    qat_acc = accuracy(trained_cnn, digits["x_val"], digits["y_val"])
    assert qat_acc >= fp32_acc - 0.05

    x = digits["x_val"]
    with paddle.no_grad():
        ref = trained_cnn(paddle.to_tensor(x)).numpy()
    summary = save_int8_model(qat, trained_cnn, tmp_path, IMAGE_SPEC)
    assert paddle.in_dynamic_mode()
    assert "forward" not in trained_cnn.__dict__  # the in-place to_static was undone
    assert summary["quant_ops"] > 0 and summary["quantized_compute_ops"] == 4
    assert summary["quant_op_types"].keys() >= {"quantize_linear", "dequantize_linear"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pdiparams", "model.pdmodel"]

    # The model still trains in dygraph after the export.
    trained_cnn.train()
    nn.functional.cross_entropy(trained_cnn(paddle.to_tensor(x[:8])),
                                paddle.to_tensor(digits["y_val"][:8])).backward()

    # INT8 Paddle Inference output is close to the fake-quant dygraph output.
    got = run_inference(tmp_path, [x], int8=True)
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() / scale < 0.2
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.97

    report = int8_kernel_report(tmp_path)
    assert report["int8_convs"] == 3 and report["fp32_convs"] == 0, report
    assert report["int8_kernels"] == 4


@pytest.mark.parametrize("config, match", [
    (QATConfig(weight_quantize_type="per_tensor"), "channel_wise_abs_max, abs_max"),
    (QATConfig(activation_quantize_type="range_abs_max"), "moving_average_abs_max"),
    (QATConfig(quantizable_layer_types=("LSTM",)), "Conv2D, Linear"),
    (QATConfig(moving_rate=1.5), r"moving_rate must be in \(0, 1\)"),
])
def test_bad_config_raises_user_error(trained_cnn, config, match):
    with pytest.raises(UserError, match=match):
        quantize_for_training(trained_cnn, config)
