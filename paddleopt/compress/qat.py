"""Quantization-aware training with ``paddleslim.dygraph.quant.QAT``.

``quantize_for_training`` swaps every Conv2D/Linear of a Layer (in place) for a version with
fake-quant ops: per-channel abs-max on weights, moving-average abs-max on activations. Fine-
tune it with any training loop, then ``save_int8_model`` writes the INT8 inference model
(``model.pdmodel`` + ``model.pdiparams`` with quantize_linear/dequantize_linear ops), which
Paddle Inference runs with INT8 kernels when oneDNN INT8 is enabled (see ``int8_check``).

Two side effects of PaddleSlim/Paddle that are undone here: ``save_quantized_model`` switches
the process to static mode and only switches back on success, and it applies
``paddle.jit.to_static`` to the model in place (its ``forward`` stays a static function).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle

WEIGHT_QUANTIZE_TYPES = ("channel_wise_abs_max", "abs_max")
ACTIVATION_QUANTIZE_TYPES = ("moving_average_abs_max",)  # the only one dygraph QAT supports
LAYER_TYPES = ("Conv2D", "Linear", "Conv2DTranspose")


@dataclass
class QATConfig:
    weight_quantize_type: str = "channel_wise_abs_max"
    activation_quantize_type: str = "moving_average_abs_max"
    quantizable_layer_types: tuple[str, ...] = ("Conv2D", "Linear")
    moving_rate: float = 0.9  # decay of the activation-range moving average
    onnx_format: bool = True  # quantize_linear/dequantize_linear in the saved model

    def validate(self) -> None:
        if self.weight_quantize_type not in WEIGHT_QUANTIZE_TYPES:
            raise UserError(f"unknown weight_quantize_type '{self.weight_quantize_type}'.",
                            f"use one of: {', '.join(WEIGHT_QUANTIZE_TYPES)}.")
        if self.activation_quantize_type not in ACTIVATION_QUANTIZE_TYPES:
            raise UserError(
                f"unsupported activation_quantize_type '{self.activation_quantize_type}'.",
                f"dygraph QAT supports: {', '.join(ACTIVATION_QUANTIZE_TYPES)}.")
        bad = [t for t in self.quantizable_layer_types if t not in LAYER_TYPES]
        if bad or not self.quantizable_layer_types:
            raise UserError(f"cannot quantize layer types {bad or '[]'}.",
                            f"use some of: {', '.join(LAYER_TYPES)}.")
        if not 0 < self.moving_rate < 1:
            raise UserError(f"moving_rate must be in (0, 1), got {self.moving_rate}.",
                            "use e.g. moving_rate: 0.9")


def quantize_for_training(model: Any, config: QATConfig | None = None) -> Any:
    """Insert fake-quant layers into ``model`` in place; return the PaddleSlim QAT handle.

    Build the fine-tuning optimizer after this call (the quantized layers keep the original
    parameters, but new scale buffers are added).
    """
    import_paddle()
    from paddleslim.dygraph.quant import QAT

    config = config or QATConfig()
    config.validate()
    qat = QAT(config={
        "weight_quantize_type": config.weight_quantize_type,
        "activation_quantize_type": config.activation_quantize_type,
        "quantizable_layer_type": list(config.quantizable_layer_types),
        "moving_rate": float(config.moving_rate),
        "onnx_format": config.onnx_format,
    })
    qat.quantize(model, inplace=True)
    return qat


def _input_spec(specs: Sequence[Any]) -> list[Any]:
    """InputSpec objects from InputSpecs or ``{"name", "shape", "dtype"}`` dicts (-1 = any)."""
    paddle = import_paddle()
    out = []
    for i, s in enumerate(specs):
        if isinstance(s, paddle.static.InputSpec):
            out.append(s)
        elif isinstance(s, dict):
            shape = [None if d is None or d < 0 else d for d in s["shape"]]
            out.append(paddle.static.InputSpec(shape, s.get("dtype", "float32"),
                                               s.get("name", f"x{i}")))
        else:
            raise UserError(f"input spec #{i} is a {type(s).__name__}.",
                            "pass paddle.static.InputSpec or {name, shape, dtype} dicts.")
    return out


def save_int8_model(qat: Any, model: Any, out_dir: str | Path,
                    input_spec: Sequence[Any]) -> dict[str, Any]:
    """Save the fine-tuned QAT ``model`` as an INT8 inference model in ``out_dir``.

    Returns ``{"model_file", "params_file", **program_quant_summary, "onednn_fixes"}``.
    """
    paddle = import_paddle()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = _input_spec(input_spec)
    had_forward_attr = "forward" in model.__dict__
    training = model.training
    was_dynamic = paddle.in_dynamic_mode()
    model.eval()  # freeze the moving-average scales; BN/dropout in inference mode
    from paddleopt.utils.jit import clear_trace_leftovers

    clear_trace_leftovers()  # save_quantized_model traces with paddle.jit.save
    try:
        qat.save_quantized_model(model, str(out_dir / "model"), input_spec=spec)
    finally:
        clear_trace_leftovers()
        if was_dynamic and not paddle.in_dynamic_mode():
            paddle.disable_static()
        if not had_forward_attr and "forward" in model.__dict__:
            del model.__dict__["forward"]  # undo the in-place to_static
        if training:
            model.train()
    from paddleopt.compress.int8_check import program_quant_summary
    from paddleopt.compress.onednn_fix import apply_onednn_int8_fixes

    model_file = out_dir / "model.pdmodel"
    for leftover in out_dir.glob("model.pdiparams.info"):
        leftover.unlink()  # training-only metadata (as in export): not part of the artifact
    fixes = apply_onednn_int8_fixes(model_file)  # so that oneDNN INT8 can run it (see there)
    return {"model_file": str(model_file), "params_file": str(out_dir / "model.pdiparams"),
            **program_quant_summary(model_file), "onednn_fixes": fixes}
