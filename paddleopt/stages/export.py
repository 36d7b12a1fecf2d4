"""`export`: checkpoint -> Paddle inference model (paddle.jit.save), checked for parity."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paddleopt.artifact import Artifact, Manifest
from paddleopt.export import parity
from paddleopt.stages.base import Stage, StageContext
from paddleopt.utils.jit import save_layer


@dataclass
class ExportConfig:
    dynamic_batch: bool = True  # input spec batch dim -1; false fixes it to batch_size
    batch_size: int = 1  # only used when dynamic_batch is false
    parity_samples: int = 64  # inputs compared between dygraph and Paddle Inference
    tolerance: float = 1e-4  # max abs diff allowed on the logits; exceeded -> stage fails
    clip_extra: bool = True  # paddle.jit.save default; to_lite repairs what it drops
    # File stem: model.pdmodel, or inference.pdmodel as PaddleClas deploy / FastDeploy expect.
    file_prefix: str = "model"
    # Also write the image preprocess as a PaddleClas/PaddleX inference.yml next to it.
    preprocess_file: bool = False

    def validate(self) -> tuple[str, str] | None:
        if self.tolerance <= 0:
            return "export.tolerance must be > 0", "use e.g. tolerance: 1.0e-4"
        if self.parity_samples < 1 or self.batch_size < 1:
            return "export.parity_samples and export.batch_size must be >= 1", \
                "use e.g. parity_samples: 64"
        from paddleopt.artifact.naming import check_file_prefix

        return check_file_prefix("export", self.file_prefix)


class ExportStage(Stage):
    name = "export"
    Config = ExportConfig
    consumes = ("checkpoint",)
    produces = "inference"

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.models.loading import load_checkpoint_model
        from paddleopt.utils.imports import import_paddle

        assert src is not None
        paddle = import_paddle()
        cfg: ExportConfig = self.config
        model = load_checkpoint_model(src)  # pruned checkpoints are resized first
        inputs = src.manifest.io.inputs
        specs = []
        for spec in inputs:
            shape = list(spec.shape)
            if shape and not cfg.dynamic_batch:
                shape[0] = cfg.batch_size
            specs.append(paddle.static.InputSpec(shape, spec.dtype, spec.name))
        stem = cfg.file_prefix
        save_layer(model, str(out_dir / stem), input_spec=specs, clip_extra=cfg.clip_extra)
        for leftover in out_dir.glob(f"{stem}.pdiparams.info"):
            leftover.unlink()  # training-only metadata, not needed for inference
        manifest = src.manifest.derive(kind="inference",
                                       files={"model": f"{stem}.pdmodel",
                                              "params": f"{stem}.pdiparams"})
        if cfg.preprocess_file:
            from paddleopt.artifact.naming import deploy_names

            deploy_names(out_dir, manifest, stem, preprocess_file=True)
        manifest.metrics.update({k: v for k, v in src.manifest.metrics.items()
                                 if k in ("accuracy", "eval_samples", "params", "flops")})
        feeds, source = sample_inputs(src, cfg.parity_samples, ctx)
        expected = parity.dygraph_outputs(model, feeds)
        actual = parity.backend_outputs(Artifact(out_dir, manifest), "paddle_inference", feeds)
        parity.measure("paddle_inference", "dygraph", expected, actual, feeds, source,
                       cfg.tolerance, scale_tolerance=False).enforce(
            manifest, "check for train-only behaviour in forward() (dropout, batch "
                      "statistics), or raise stages.export.tolerance.")
        return manifest


def sample_inputs(src: Artifact, count: int, ctx: StageContext | None
                  ) -> tuple[list[np.ndarray], str]:
    """Real evaluation samples when the pipeline has data, else seeded random inputs (and
    which of the two, for ``checks.parity_inputs``)."""
    if ctx is not None and getattr(ctx, "pipeline", None) is not None:
        from paddleopt.data.loaders import build_data

        feeds, _ = build_data(ctx.pipeline.data, ctx.seed).eval_feeds(count)
        return feeds, "eval data"
    from paddleopt.deploy.bench import make_feeds

    return make_feeds(src.manifest.io.inputs, count, np.random.default_rng(0)), "random"
