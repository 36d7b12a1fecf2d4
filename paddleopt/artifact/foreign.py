"""Wrap a Paddle inference model that paddleopt did not make into an in-memory manifest."""
from __future__ import annotations

from pathlib import Path

from paddleopt.artifact.manifest import IOSpec, Manifest, TensorSpec
from paddleopt.artifact.preprocess_files import find_preprocess_file, read_preprocess_file
from paddleopt.artifact.program import feed_fetch_specs, find_model_files, op_types, read_program


def wrap_inference_dir(folder: Path) -> Manifest:
    """The manifest of a plain inference folder: io from its program, precision from its
    ops, preprocessing and labels from the exporter's file next to it (if any)."""
    model_file, params_file = find_model_files(folder)
    program = read_program(model_file)
    feeds, fetches = feed_fetch_specs(program)
    files = {"model": model_file.name}
    if params_file is not None:
        files["params"] = params_file.name
    ops = op_types(program)
    # A quantized model carries fake quant/dequant ops (or quantize_linear in ONNX format).
    int8 = any("quantize" in op for op in ops)
    model = {"source": "foreign", "path": str(folder)}
    preprocess: dict = {}
    labels: list[str] = []
    pre_file = find_preprocess_file(folder)
    if pre_file is not None:
        read = read_preprocess_file(pre_file)
        preprocess, labels = read["preprocess"], read["labels"]
        model["preprocess_file"] = read["file"]
        if read["notes"]:
            model["preprocess_notes"] = read["notes"]
        if read.get("postprocess"):  # e.g. CTCLabelDecode (its characters stay in the file)
            model["postprocess"] = read["postprocess"]
        if read.get("character_dict_size"):
            model["character_dict_size"] = read["character_dict_size"]
    manifest = Manifest(
        kind="inference",
        files=files,
        io=IOSpec(inputs=[TensorSpec(**s) for s in feeds],
                  outputs=[TensorSpec(**s) for s in fetches]),
        precision="int8" if int8 else "fp32",
        model=model,
        preprocess=preprocess,
        labels=labels,
    )
    if pre_file is not None and read.get("shapes"):  # the exporter's own min/opt/max
        from paddleopt.artifact.shapes import apply_shapes

        apply_shapes(manifest, read["shapes"], f"{pre_file.name} Hpi dynamic shapes")
    else:
        _shape_from_preprocess(manifest)
    return manifest


def _shape_from_preprocess(manifest: Manifest) -> None:
    """One dynamic image input [N, C, -1, -1] + a preprocess file that fixes the size: the
    size the exporter's own deploy code feeds is the shape to measure at."""
    from paddleopt.artifact.shapes import needs_shape

    pre = manifest.preprocess
    inputs = manifest.io.inputs
    if len(inputs) != 1 or not pre.get("size") or len(inputs[0].shape) != 4 \
            or not needs_shape(inputs[0]):
        return
    shape = [1, int(pre.get("channels", 3)), *[int(v) for v in pre["size"]]]
    if all(d in (-1, s) for d, s in zip(inputs[0].shape, shape)):
        inputs[0].min_shape = inputs[0].opt_shape = inputs[0].max_shape = shape
