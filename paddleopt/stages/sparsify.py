"""`sparsify`: unstructured magnitude pruning while fine-tuning a checkpoint.

The smallest weights of every conv/linear weight (one global threshold, or per layer with
``local``) are held at zero during fine-tuning, at a constant ratio or rising along a GMP
schedule; ``finalize`` bakes the zeros in. The measured sparsity (exact zeros) is reported,
with the size of the weights compressed by zlib (what the zeros buy on disk). Zeros do not
make dense oneDNN kernels faster: use ``prune`` for CPU speed (see docs/COMPRESSION.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from paddleopt.artifact import Artifact, Manifest
from paddleopt.stages._compress import FinetuneConfig, FinetuneStage
from paddleopt.stages.base import StageContext


@dataclass
class GMPConfig:
    """Gradual magnitude pruning phases, as fractions of the fine-tuning's optimizer steps."""

    stable: float = 0.0  # keep dense first
    pruning: float = 0.7  # the ratio rises from initial_ratio to the target
    initial_ratio: float = 0.0
    pruning_steps: int = 10  # how many times the ratio is raised

    def validate(self) -> tuple[str, str] | None:
        if self.stable < 0 or self.pruning <= 0 or self.stable + self.pruning > 1:
            return ("gmp needs stable >= 0, pruning > 0 and stable + pruning <= 1",
                    "use e.g. gmp: {stable: 0.0, pruning: 0.7}")
        if not 0 <= self.initial_ratio < 1 or self.pruning_steps < 1:
            return ("gmp.initial_ratio must be in [0, 1) and pruning_steps >= 1",
                    "use e.g. initial_ratio: 0.0, pruning_steps: 10")
        return None


@dataclass
class SparsifyConfig:
    """Attributes:
        ratio: fraction of the prunable weights (conv/linear weights) set to zero, [0, 1).
        schedule: constant (the ratio from the first step) or gmp (rising, see ``gmp``).
        local: the ratio per weight tensor instead of one global magnitude threshold.
        conv1x1_only: only 1x1 conv weights (what sparse inference kernels accelerate).
        gmp: the GMP phases.
        finetune: the fine-tuning recipe during which the sparsity is applied.
    """

    ratio: float = 0.5
    schedule: Literal["constant", "gmp"] = "constant"
    local: bool = False
    conv1x1_only: bool = False
    gmp: GMPConfig = field(default_factory=GMPConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def validate(self) -> tuple[str, str] | None:
        if not 0 <= self.ratio < 1:
            return (f"ratio must be in [0, 1), got {self.ratio}",
                    "use e.g. ratio: 0.75 (three quarters of the weights become zero)")
        return None


class SparsifyStage(FinetuneStage):
    name = "sparsify"
    Config = SparsifyConfig
    consumes = ("checkpoint",)
    produces = "checkpoint"
    extras = ("slim",)

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        import zlib

        from paddleopt.compress.sparsity import GMPPhases, Sparsifier, measure_sparsity
        from paddleopt.stages._compress import (checkpoint_manifest, finetune, fit_metrics,
                                                steps_per_run)

        from paddleopt.engine.loop import is_rank0
        from paddleopt.stages._compress import rank_manifest

        assert src is not None
        launched = self.launch_if_distributed(src, out_dir, ctx)
        if launched is not None:
            return launched
        cfg: SparsifyConfig = self.config
        data, model = self.prepare(src, ctx)
        total = steps_per_run(data, cfg.finetune)
        sparsifier = Sparsifier(
            model, cfg.ratio, schedule=cfg.schedule, total_steps=total, local=cfg.local,
            conv1x1_only=cfg.conv1x1_only,
            gmp=GMPPhases(stable=cfg.gmp.stable, pruning=cfg.gmp.pruning,
                          initial_ratio=cfg.gmp.initial_ratio,
                          pruning_steps=cfg.gmp.pruning_steps))
        if cfg.schedule == "constant":
            sparsifier.step()  # masks from the very first forward on (GMP starts dense)
        result = finetune(model, data, cfg.finetune, ctx, after_step=sparsifier.after_step)
        measured = sparsifier.finalize()
        # fit evaluated with the masks applied by hooks; finalize() baked the same zeros in,
        # so re-scoring would give the same accuracy. The numbers below are of the final model.
        per_param = measured.pop("per_param")
        if not is_rank0():
            return rank_manifest(fit_metrics(result))  # rank 0 writes the artifact
        ctx.log.info("[%s] sparsity %.4f of %d prunable weights (target %.4f)", ctx.stage_id,
                     measured["sparsity"], measured["prunable_params"], cfg.ratio)
        manifest = checkpoint_manifest(model, dict(src.manifest.model), data, out_dir, {
            **fit_metrics(result), **measured, "target_sparsity": cfg.ratio,
            "sparsity_per_param": per_param,
            "accuracy_before": src.manifest.metrics.get("accuracy")}, src=src)
        raw = (out_dir / "model.pdparams").read_bytes()
        dense = src.file("weights").read_bytes()
        manifest.metrics["weights_zlib_bytes"] = len(zlib.compress(raw, 6))
        manifest.metrics["weights_zlib_bytes_before"] = len(zlib.compress(dense, 6))
        check = measure_sparsity(model)["sparsity"]
        manifest.checks["sparsity_reached"] = abs(check - cfg.ratio) <= 0.02
        return manifest
