"""paddle2onnx conversion: Paddle inference model -> ONNX, in a child process.

paddle2onnx 1.3.1 aborts the interpreter on unsupported ops or a bad opset, so it runs in a
child whose output is passed through. ``finalize_onnx`` names the batch dimension and
describes the result. The ``to_onnx`` stage is a thin layer over this module.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError

MIN_OPSET, MAX_OPSET = 7, 19  # what paddle2onnx 1.3.1 accepts

_P2O_CHILD = r"""
import gzip, zlib  # before paddle (paddle2onnx imports it): libpaddle shadows zlib symbols
import json, sys
args = json.loads(sys.argv[1])
import paddle2onnx
paddle2onnx.export(args["model"], args["params"], save_file=args["out"],
                   opset_version=args["opset"], auto_upgrade_opset=True, verbose=True,
                   enable_onnx_checker=args["checker"], deploy_backend=args["deploy_backend"])
"""


def convert(model_file: Path, params_file: Path, onnx_file: Path, opset_version: int = 13,
            enable_onnx_checker: bool = True, deploy_backend: str = "onnxruntime",
            timeout: float = 600.0) -> str:
    """Run paddle2onnx in a child process; return its log, raise UserError with it on failure.

    ``opset_version`` is a floor: paddle2onnx raises it when an op needs more
    (``finalize_onnx`` reports the opset used). ``deploy_backend``: paddle2onnx's flavour
    for quantized models (onnxruntime, tensorrt, others).
    """
    from paddleopt.export.lite_opt import run_tool

    args = {"model": str(model_file), "params": str(params_file), "out": str(onnx_file),
            "opset": opset_version, "checker": enable_onnx_checker,
            "deploy_backend": deploy_backend}
    onnx_file.unlink(missing_ok=True)
    run = run_tool([json.dumps(args)], timeout=timeout,
                   command=[sys.executable, "-c", _P2O_CHILD])
    if run.returncode == 0 and onnx_file.is_file() and onnx_file.stat().st_size > 0:
        return run.output
    ops = _p2o_unsupported(run.output)
    raise UserError(
        f"paddle2onnx failed ({run.how}); its output (last lines):\n{run.tail()}"
        + (f"\nunsupported ops: {', '.join(ops)}" if ops else ""),
        "see `paddleopt check ARTIFACT --target onnx`; try another opset_version, or deploy "
        "with paddle_inference / lite.")


def _p2o_unsupported(output: str) -> list[str]:
    marker = "not supported yet, including"
    for line in output.splitlines():
        if marker in line:
            return [op.strip() for op in line.split(marker, 1)[1].split(",") if op.strip()]
    return []


def finalize_onnx(onnx_file: Path, dynamic_batch: bool = True, batch_size: int = 1
                  ) -> dict[str, Any]:
    """Name (or fix) the batch dimension and describe the model: opset, node counts, names.

    paddle2onnx gives each dynamic dimension its own symbol (DynamicDimension.0, .1, ...), so
    nothing tells a runtime that input and output batch are the same; one name ("batch") does.
    """
    import onnx

    model = onnx.load(str(onnx_file))
    for is_input, values in ((True, model.graph.input), (False, model.graph.output)):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            if not dims or (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
                continue  # no shape, or a batch fixed at export time
            if dynamic_batch:
                dims[0].dim_param = "batch"
            elif is_input:
                dims[0].dim_value = batch_size
    onnx.save(model, str(onnx_file))
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "ir_version": model.ir_version, "node_counts": dict(sorted(
        counts.items())), "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output]}
