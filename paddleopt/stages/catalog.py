"""The only registry of stages: name -> ("module:Class", extra). Nothing registers on import."""
from __future__ import annotations

import importlib

from paddleopt.utils.errors import ConfigError

# extra: the optional dependency group the stage needs beyond the core install (or None).
CATALOG: dict[str, tuple[str, str | None]] = {
    "train": ("paddleopt.stages.train:TrainStage", None),
    "prune": ("paddleopt.stages.prune:PruneStage", "slim"),
    "sparsify": ("paddleopt.stages.sparsify:SparsifyStage", "slim"),
    "distill": ("paddleopt.stages.distill:DistillStage", "slim"),
    "qat": ("paddleopt.stages.qat:QATStage", "slim"),
    "export": ("paddleopt.stages.export:ExportStage", None),
    "ptq": ("paddleopt.stages.ptq:PTQStage", "slim"),
    "to_onnx": ("paddleopt.stages.to_onnx:ToOnnxStage", "onnx"),
    "to_lite": ("paddleopt.stages.to_lite:ToLiteStage", "lite"),
}


def stage_class(name: str) -> type:
    if name not in CATALOG:
        import difflib

        close = difflib.get_close_matches(name, list(CATALOG), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown stage type '{name}'.",
                          f"{hint}known stages: {', '.join(CATALOG)}.")
    module_name, cls_name = CATALOG[name][0].split(":")
    return getattr(importlib.import_module(module_name), cls_name)
