"""`prune`: structured filter pruning (L1 / L2 / FPGM) of a checkpoint, then fine-tuning.

Filters are physically removed (smaller tensors, fewer FLOPs, faster on any backend); see
``paddleopt.compress.prune``. Either give per-layer ``ratios`` or a ``flops_reduction`` target
that a sensitivity analysis (accuracy on held-out validation samples with each layer pruned
at 10%..90%) spreads over the layers. The pruned shapes are recorded in the checkpoint's
model spec (``model.pruned_shapes``) so that export, eager evaluation and later fine-tuning
rebuild the smaller network (``paddleopt.models.loading.load_checkpoint_model``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paddleopt.artifact import Artifact, Manifest
from paddleopt.stages._compress import FinetuneConfig, FinetuneStage
from paddleopt.stages.base import StageContext


@dataclass
class PruneConfig:
    """Attributes:
        criterion: filter importance: l1 / l2 norm of each filter, or fpgm (distance to the
            geometric median: filters that others can replace go first).
        ratios: conv weight (structured name, e.g. ``blocks.0.conv1.weight``) -> fraction of
            its filters removed, in [0, 1). Exclusive with flops_reduction.
        flops_reduction: fraction of the model's FLOPs to remove, in (0, 1), e.g. 0.5.
        spread: how flops_reduction is spread: sensitivity (per-layer ratios from a
            sensitivity analysis) or uniform (one ratio for every prunable conv).
        sensitivity_samples: validation samples scored for each sensitivity step (9 steps per
            prunable conv).
        sensitivity_file: JSON cache of the sensitivities, reused across runs when it exists
            (default: none; the analysis is also saved inside the artifact).
        skip: conv weights never pruned (e.g. the stem).
        align: round kept channel counts to a multiple of this (oneDNN likes multiples of 8).
        tolerance: largest accepted miss of flops_reduction before the uniform spread is used.
        finetune: the fine-tuning recipe after pruning (train's keys); null: no fine-tuning.
    """

    criterion: Literal["l1", "l2", "fpgm"] = "l1"
    ratios: dict[str, float] | None = None
    flops_reduction: float | None = None
    spread: Literal["sensitivity", "uniform"] = "sensitivity"
    sensitivity_samples: int = 500
    sensitivity_file: str | None = None
    skip: list[str] = field(default_factory=list)
    align: int | None = 8
    tolerance: float = 0.1
    finetune: FinetuneConfig | None = field(default_factory=FinetuneConfig)

    def validate(self) -> tuple[str, str] | None:
        if (self.ratios is None) == (self.flops_reduction is None):
            return ("prune needs exactly one of ratios or flops_reduction",
                    "set flops_reduction: 0.5, or ratios: {blocks.0.conv1.weight: 0.5}")
        if self.flops_reduction is not None and not 0 < self.flops_reduction < 1:
            return (f"flops_reduction must be in (0, 1), got {self.flops_reduction}",
                    "use e.g. flops_reduction: 0.5 (remove half of the FLOPs)")
        for name, ratio in (self.ratios or {}).items():
            if not 0 <= ratio < 1:
                return (f"ratios[{name}] must be in [0, 1), got {ratio}",
                        "give the fraction of filters to remove, e.g. 0.5")
        if self.sensitivity_samples < 1:
            return "sensitivity_samples must be >= 1", "use e.g. sensitivity_samples: 500"
        if self.align is not None and self.align < 1:
            return "align must be >= 1 or null", "use align: 8, or null for no rounding"
        if self.tolerance < 0:
            return "tolerance must be >= 0", "use e.g. tolerance: 0.1"
        return None


class PruneStage(FinetuneStage):
    name = "prune"
    Config = PruneConfig
    consumes = ("checkpoint",)
    produces = "checkpoint"
    extras = ("slim",)

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        import json

        from paddleopt.compress.prune import prune_filters
        from paddleopt.models.loading import PRUNED_SHAPES
        from paddleopt.stages._compress import (accuracy_of, checkpoint_manifest, finetune,
                                                fit_metrics, held_out, input_shape)

        from paddleopt.engine.loop import is_rank0

        assert src is not None
        launched = self.launch_if_distributed(src, out_dir, ctx)
        if launched is not None:
            return launched
        cfg: PruneConfig = self.config
        data, model = self.prepare(src, ctx)
        original = {k: list(v.shape) for k, v in model.state_dict().items()}
        val_x, val_y = held_out(data, cfg.sensitivity_samples)
        score = (lambda m: accuracy_of(m, val_x, val_y))  # noqa: E731
        before = score(model)
        sen_file = Path(cfg.sensitivity_file) if cfg.sensitivity_file else \
            out_dir / "sensitivity.json"
        shapes = input_shape(data.input_specs())
        report = prune_filters(
            model, shapes if len(shapes) > 1 else shapes[0], criterion=cfg.criterion,
            ratios=cfg.ratios, flops_reduction=cfg.flops_reduction, spread=cfg.spread,
            eval_fn=score if cfg.spread == "sensitivity" else None,
            # one writer: the other ranks compute the same sensitivities without a cache file
            sen_file=sen_file if cfg.flops_reduction is not None and
            cfg.spread == "sensitivity" and is_rank0() else None,
            skip=cfg.skip, align=cfg.align, tolerance=cfg.tolerance,
            input_dtype=data.input_specs()[0].dtype)
        after_prune = score(model)
        ctx.log.info("[%s] %s pruning: FLOPs %d -> %d (-%.1f%%), params %d -> %d, held-out "
                     "accuracy %.4f -> %.4f", ctx.stage_id, report.mode, report.flops_before,
                     report.flops_after, 100 * report.flops_reduction, report.params_before,
                     report.params_after, before, after_prune)
        if report.note:
            ctx.log.warning("[%s] %s", ctx.stage_id, report.note)
        result: dict[str, Any] = {}
        if cfg.finetune is not None:
            result = fit_metrics(finetune(model, data, cfg.finetune, ctx))
        else:
            from paddleopt.engine.loop import evaluate

            final = evaluate(model, data.eval_loader())
            result = {"accuracy": final["accuracy"], "loss": final["loss"],
                      "eval_samples": final["samples"]}
        spec = dict(src.manifest.model)
        spec[PRUNED_SHAPES] = {k: list(v.shape) for k, v in model.state_dict().items()
                               if original.get(k) != list(v.shape)}
        files = {}
        prune_info = report.to_dict()
        sensitivities = prune_info.pop("sensitivities", None)
        prune_info.pop("shapes", None)  # the resized ones are in model.pruned_shapes
        if sensitivities is not None and is_rank0():
            (out_dir / "sensitivity.json").write_text(json.dumps(sensitivities, indent=1))
            files["sensitivity"] = "sensitivity.json"
        manifest = checkpoint_manifest(model, spec, data, out_dir, {
            **result,
            "accuracy_before": src.manifest.metrics.get("accuracy"),
            "heldout_accuracy_before": before, "heldout_accuracy_pruned": after_prune,
            "flops_before": report.flops_before, "flops_after": report.flops_after,
            "params_before": report.params_before, "params_after": report.params_after,
            "flops_reduction": round(report.flops_reduction, 4),
            "params_reduction": round(report.params_reduction, 4),
            "prune": prune_info}, src=src)
        manifest.files.update(files)
        return manifest
