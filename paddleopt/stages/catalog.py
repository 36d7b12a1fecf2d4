"""The only registry of stages: name -> (class, role, extra). Nothing registers on import.

Adding a stage is one module plus one row (see docs/ARCHITECTURE.md). Code that treats stages
by what they do asks for a role, never for a list of names:

* ``train``: makes the weights (a checkpoint) from data;
* ``compress``: changes a model's weights or structure (prune, sparsify, distill on
  checkpoints; prune_distill on inference models);
* ``quantize``: produces an int8 model (qat, ptq, qat_distill); conversions check what it wrote;
* ``export``: checkpoint -> Paddle inference model, the format boundary (``paddleopt export``);
* ``convert``: inference model -> a deployment format for a target (onnx, a Lite target); these
  stages check their own input, and the plan pre-checks their targets before any training.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from paddleopt.utils.errors import ConfigError

Role = Literal["train", "compress", "quantize", "export", "convert"]


@dataclass(frozen=True)
class Entry:
    """One stage: where its class lives, what it is for, the optional extra it needs
    beyond the core install (or None)."""

    target: str  # "module:Class"
    role: Role
    extra: str | None = None


CATALOG: dict[str, Entry] = {
    "train": Entry("paddleopt.stages.train:TrainStage", "train"),
    "prune": Entry("paddleopt.stages.prune:PruneStage", "compress", "slim"),
    "sparsify": Entry("paddleopt.stages.sparsify:SparsifyStage", "compress", "slim"),
    "distill": Entry("paddleopt.stages.distill:DistillStage", "compress", "slim"),
    "prune_distill": Entry("paddleopt.stages.prune_distill:PruneDistillStage", "compress",
                           "slim"),
    "qat": Entry("paddleopt.stages.qat:QATStage", "quantize", "slim"),
    "export": Entry("paddleopt.stages.export:ExportStage", "export"),
    "early_exit": Entry("paddleopt.stages.early_exit:EarlyExitStage", "export"),
    "ptq": Entry("paddleopt.stages.ptq:PTQStage", "quantize", "slim"),
    "qat_distill": Entry("paddleopt.stages.qat_distill:QATDistillStage", "quantize", "slim"),
    "to_onnx": Entry("paddleopt.stages.to_onnx:ToOnnxStage", "convert", "onnx"),
    "to_lite": Entry("paddleopt.stages.to_lite:ToLiteStage", "convert", "lite"),
}


def stage_types(*roles: Role) -> tuple[str, ...]:
    """The stage names with one of ``roles``, in catalogue order."""
    return tuple(name for name, entry in CATALOG.items() if entry.role in roles)


def role_of(name: str) -> Role | None:
    entry = CATALOG.get(name)
    return entry.role if entry else None


def stage_class(name: str) -> type:
    if name not in CATALOG:
        import difflib

        close = difflib.get_close_matches(name, list(CATALOG), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown stage type '{name}'.",
                          f"{hint}known stages: {', '.join(CATALOG)}.")
    module_name, cls_name = CATALOG[name].target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)
