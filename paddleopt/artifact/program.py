"""Read a Paddle inference ProgramDesc (.pdmodel / __model__) without running it.

Used to describe models we did not train (their feed/fetch tensors) and by checks that list
a model's operators. Parsing the protobuf directly avoids switching Paddle into static mode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle

_DTYPES = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "BF16": "bfloat16",
           "INT64": "int64", "INT32": "int32", "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}


def framework_pb2() -> Any:
    import_paddle()
    from paddle.base.proto import framework_pb2 as pb2

    return pb2


def read_program(model_file: str | Path) -> Any:
    """Parse ``model_file`` into a ``framework_pb2.ProgramDesc``; clear error if it is not one."""
    pb2 = framework_pb2()
    program = pb2.ProgramDesc()
    try:
        program.ParseFromString(Path(model_file).read_bytes())
    except Exception as exc:  # protobuf raises DecodeError (message varies by version)
        raise UserError(f"'{model_file}' is not a Paddle program (.pdmodel): {exc}",
                        "pass the .pdmodel written by paddle.jit.save or save_inference_model."
                        ) from None
    if not program.blocks:
        raise UserError(f"'{model_file}' holds an empty Paddle program.",
                        "re-export the model.")
    return program


def validate_program(model_file: str | Path) -> Any:
    """Parse ``model_file`` and check the structure Paddle trusts without checking: it
    segfaults on a program whose ops name blocks or variables that do not exist. Returns the
    ProgramDesc; raises a UserError naming the file and the first problem."""
    program = read_program(model_file)
    problem = _structure_problem(program)
    if problem:
        raise UserError(f"'{model_file}' is not a valid Paddle inference program: {problem}.",
                        "re-export the model (paddle.jit.save / save_inference_model, or "
                        "re-run the stage that produced it); the file is corrupt.")
    return program


def _structure_problem(program: Any) -> str | None:
    pb2 = framework_pb2()
    block_attr_types = (pb2.AttrType.Value("BLOCK"), pb2.AttrType.Value("BLOCKS"))
    n_blocks = len(program.blocks)
    var_names: list[set[str]] = []
    for i, block in enumerate(program.blocks):
        if block.idx != i:
            return f"block #{i} says it is block {block.idx}"
        if block.parent_idx >= n_blocks or (block.parent_idx < 0 and i != 0):
            return f"block #{i} has parent {block.parent_idx} (the program has {n_blocks})"
        var_names.append({v.name for v in block.vars})

    def visible(i: int) -> set[str]:  # a block sees its own and its ancestors' variables
        names: set[str] = set()
        seen = 0
        while i >= 0 and seen <= n_blocks:
            names |= var_names[i]
            i, seen = program.blocks[i].parent_idx, seen + 1
        return names

    ops = [op.type for op in program.blocks[0].ops]
    if "fetch" not in ops:
        return "its main block has no fetch op (not an inference program)"
    for i, block in enumerate(program.blocks):
        names = visible(i)
        for j, op in enumerate(block.ops):
            if not op.type:
                return f"op #{j} of block {i} has no type"
            for slot in (*op.inputs, *op.outputs):
                for arg in slot.arguments:
                    if arg and arg != "@EMPTY@" and arg not in names:
                        return (f"op #{j} ({op.type}) of block {i} uses variable '{arg}', "
                                f"which the program does not declare")
            for attr in op.attrs:
                if attr.type in block_attr_types:
                    idxs = [attr.block_idx] if attr.type == block_attr_types[0] \
                        else list(attr.blocks_idx)
                    if any(not 0 <= b < n_blocks for b in idxs):
                        return (f"op #{j} ({op.type}) of block {i} refers to block {idxs} "
                                f"(the program has {n_blocks})")
    return None


def _var_spec(block: Any, name: str) -> dict[str, Any]:
    pb2 = framework_pb2()
    for var in block.vars:
        if var.name == name:
            tensor_type = var.type
            if tensor_type.type == pb2.VarType.LOD_TENSOR:
                desc = tensor_type.lod_tensor
                dtype = pb2.VarType.Type.Name(desc.tensor.data_type)
                return {"name": name, "shape": list(desc.tensor.dims),
                        "dtype": _DTYPES.get(dtype, dtype.lower()), "lod_level": desc.lod_level}
            return {"name": name, "shape": [], "dtype": "unknown", "lod_level": 0}
    return {"name": name, "shape": [], "dtype": "unknown", "lod_level": 0}


def feed_fetch_specs(program: Any) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs in feed/fetch column order."""
    block = program.blocks[0]
    feeds, fetches = [], []
    for op in block.ops:
        if op.type not in ("feed", "fetch"):
            continue
        col = next((a.i for a in op.attrs if a.name == "col"), 0)
        slot = "Out" if op.type == "feed" else "X"
        names = [n for v in (op.outputs if op.type == "feed" else op.inputs)
                 if v.parameter == slot for n in v.arguments]
        for name in names:
            (feeds if op.type == "feed" else fetches).append((col, _var_spec(block, name)))
    return [s for _, s in sorted(feeds, key=lambda t: t[0])], \
        [s for _, s in sorted(fetches, key=lambda t: t[0])]


def op_types(program: Any) -> list[str]:
    """Sorted unique operator types over every block (feed/fetch excluded)."""
    return sorted({op.type for block in program.blocks for op in block.ops}
                  - {"feed", "fetch"})


def find_model_files(folder: Path) -> tuple[Path, Path | None]:
    """Locate (model_file, params_file) in a plain inference model folder."""
    models = sorted(folder.glob("*.pdmodel"))
    for path in (*models, *(m.with_suffix(".pdiparams") for m in models)):
        if path.is_dir():
            raise UserError(f"'{path}' is a directory, not a model file.",
                            "replace it with the file written by the exporter.")
    if len(models) == 1:
        params = models[0].with_suffix(".pdiparams")
        return models[0], params if params.is_file() else None
    if (folder / "__model__").is_file():
        params = folder / "__params__"
        return folder / "__model__", params if params.is_file() else None
    if not models and any(folder.glob("*.json")) and \
            any(p.with_suffix(".pdiparams").is_file() for p in folder.glob("*.json")):
        json_model = next(p for p in folder.glob("*.json") if p.with_suffix(".pdiparams").is_file())
        raise UserError(
            f"'{folder}' holds a Paddle 3 model ('{json_model.name}', the PIR program format); "
            f"paddleopt runs the Paddle 2.6 stack (PaddleSlim, paddle2onnx 1.3, Paddle Lite "
            f"read only .pdmodel programs).",
            "re-export it as .pdmodel: with Paddle 3, set FLAGS_enable_pir_api=0 before "
            "exporting (e.g. `FLAGS_enable_pir_api=0 python tools/export_model.py ...` in "
            "PaddleOCR/PaddleClas/PaddleX), or export with paddlepaddle 2.6.")
    found = ", ".join(p.name for p in models) or "none"
    raise UserError(
        f"'{folder}' is neither a paddleopt artifact (no manifest.json) nor a Paddle inference "
        f"model folder with exactly one .pdmodel (found: {found}).",
        "pass the folder that holds one .pdmodel (model.pdmodel or inference.pdmodel) and its "
        ".pdiparams, or a paddleopt artifact.")
