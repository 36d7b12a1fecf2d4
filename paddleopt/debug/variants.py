"""Cheap variants of a PTQ INT8 artifact for the fallback search: no re-quantizing.

ptq's skip list does two things to a skipped op: its activation input loses its
quantize/dequantize pair and the op gets ``skip_quant = 1``, which is what Paddle Inference's
oneDNN placement pass reads to leave it fp32. Marking the op in the quantized program gives
the same oneDNN graph except that the weight keeps its INT8 rounding (per channel: small next
to the activation's). So a candidate skip list costs one program copy and one predictor, not
a calibration run; the list the search keeps is then verified by really re-quantizing.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paddleopt.debug.capture import QDQ_SUFFIX


def mark_skipped(model_file: Path, weights: Sequence[str], out_file: Path) -> list[str]:
    """Write ``out_file``: the program of ``model_file`` with every op that reads one of
    ``weights`` (or its dequantized form) marked ``skip_quant``. Returns the op types marked."""
    from paddleopt.artifact.program import framework_pb2, read_program

    pb2 = framework_pb2()
    program = read_program(model_file)
    wanted = set(weights) | {w + QDQ_SUFFIX for w in weights}
    marked = []
    for op in program.blocks[0].ops:
        if op.type.endswith("quantize_linear") or not any(
                n in wanted for v in op.inputs for n in v.arguments):
            continue
        # as ptq leaves a skipped op: no quantization_type, skip_quant = 1
        keep = [a for a in op.attrs if a.name not in ("quantization_type", "skip_quant")]
        del op.attrs[:]
        op.attrs.extend(keep)
        attr = op.attrs.add()
        attr.name, attr.type, attr.i = "skip_quant", pb2.AttrType.Value("INT"), 1
        marked.append(op.type)
    out_file.write_bytes(program.SerializeToString())
    return marked


def skipped_variant(int8: Any, weights: Sequence[str], folder: Path,
                    onednn_int8_ops: list[str] | None) -> Any:
    """An artifact in ``folder`` sharing ``int8``'s params (a hard link) whose ops reading
    ``weights`` run fp32 under oneDNN INT8, and only ``onednn_int8_ops`` types INT8."""
    from paddleopt.artifact import Artifact

    folder.mkdir(parents=True, exist_ok=True)
    mark_skipped(Path(int8.file("model")), weights, folder / "model.pdmodel")
    params = folder / "model.pdiparams"
    if not params.exists():
        try:  # artifacts refuse symlinks that leave their folder; a hard link is a file
            os.link(int8.file("params"), params)
        except OSError:  # another file system
            shutil.copyfile(int8.file("params"), params)
    quant = dict(int8.manifest.quantization or {})
    quant.update(skip_tensors=[*quant.get("skip_tensors", []), *weights],
                 onednn_int8_ops=onednn_int8_ops)
    manifest = int8.manifest.derive(kind="inference", quantization=quant,
                                    files={"model": "model.pdmodel",
                                           "params": "model.pdiparams"})
    manifest.save(folder)
    return Artifact(folder, manifest)
