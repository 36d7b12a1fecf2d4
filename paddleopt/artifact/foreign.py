"""Wrap a Paddle inference model that paddleopt did not make into an in-memory manifest."""
from __future__ import annotations

from pathlib import Path

from paddleopt.artifact.manifest import IOSpec, Manifest, TensorSpec
from paddleopt.artifact.program import feed_fetch_specs, find_model_files, op_types, read_program


def wrap_inference_dir(folder: Path) -> Manifest:
    model_file, params_file = find_model_files(folder)
    program = read_program(model_file)
    feeds, fetches = feed_fetch_specs(program)
    files = {"model": model_file.name}
    if params_file is not None:
        files["params"] = params_file.name
    ops = op_types(program)
    # A quantized model carries fake quant/dequant ops (or quantize_linear in ONNX format).
    int8 = any("quantize" in op for op in ops)
    return Manifest(
        kind="inference",
        files=files,
        io=IOSpec(inputs=[TensorSpec(**s) for s in feeds],
                  outputs=[TensorSpec(**s) for s in fetches]),
        precision="int8" if int8 else "fp32",
        model={"source": "foreign", "path": str(folder)},
    )
