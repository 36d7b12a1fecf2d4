"""Helpers shared by the compression stages (prune, sparsify, distill, qat, ptq).

Fine-tuning always goes through ``engine.loop.fit`` so that every compression stage trains the
way ``train`` does (optimizers, schedules, AMP, gradient accumulation, distributed ranks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paddleopt.engine.config import OptimizerConfig, TrainConfig
from paddleopt.stages.base import Stage
from paddleopt.utils.errors import ConfigError, UserError
from paddleopt.utils.grammar import a_an

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, Manifest
    from paddleopt.stages.base import StageContext


@dataclass
class FinetuneConfig(TrainConfig):
    """The training recipe of a compression stage: ``train``'s keys, with a learning rate
    suited to continuing from trained weights (0.01 instead of 0.05)."""

    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=0.01))


def check_single_process(cfg: TrainConfig | None, where: str) -> None:
    """For fine-tuning that runs inside another stage (ptq's QAT fallback): that stage is not
    started under the launcher, so refuse a multi-process request instead of silently
    training in one process."""
    if cfg is not None and cfg.fleet.distributed:
        raise ConfigError(f"{where}.finetune.fleet asks for {cfg.fleet.world_size} processes; "
                          f"this fine-tuning runs inside the stage's own process.",
                          "remove finetune.fleet.nproc/ips here, or run a qat stage (it "
                          "fine-tunes distributed) instead of the fallback.")


class FinetuneStage(Stage):
    """A stage that fine-tunes with ``config.finetune`` (prune, sparsify, distill, qat): the
    plan-time check and the run preamble they share."""

    def check(self, pipeline: Any, stage_id: str) -> None:
        from paddleopt.distributed.runtime import check_fleet

        if self.config.finetune is not None:
            check_fleet(self.config.finetune.fleet, pipeline.device,
                        f"stages.{stage_id}.finetune")

    def launch_if_distributed(self, src: Artifact | None, out_dir: Path, ctx: StageContext
                              ) -> Manifest | None:
        """With ``finetune.fleet.nproc``/``ips`` asking for several processes, run this stage
        under ``paddle.distributed.launch`` (the same way ``train`` does) and return rank 0's
        manifest; None in one process and inside the ranks, which run the stage themselves.

        Every rank runs the whole stage: the deterministic parts (loading, pruning, the
        sensitivity analysis, quantization wrappers) come out the same on every rank, ``fit``
        shards the data and all-reduces the gradients, and only rank 0 writes files."""
        from paddleopt.distributed import launch_stage, needs_launch

        cfg = self.config.finetune
        if cfg is not None and needs_launch(cfg.fleet):
            return launch_stage(self, src, out_dir, ctx, fleet=cfg.fleet)
        return None

    @staticmethod
    def prepare(src: Artifact | None, ctx: StageContext) -> tuple[Any, Any]:
        """Seed, build the pipeline's data, then load the input checkpoint (None without an
        input), in that order, so that runs are reproducible: ``(data, model)``."""
        from paddleopt.data.loaders import build_data
        from paddleopt.models.loading import load_checkpoint_model
        from paddleopt.utils.seed import seed_everything

        seed_everything(ctx.seed)
        data = build_data(ctx.pipeline.data, ctx.seed)
        return data, load_checkpoint_model(src) if src is not None else None


def earlier_stages(pipeline: Any, stage_id: str) -> list[str]:
    ids = list(pipeline.stages)
    return ids[:ids.index(stage_id)] if stage_id in ids else ids


def check_model_dir_and_calibration(model_dir: str | None, calibration: Any, where: str
                                    ) -> None:
    """Plan-time checks shared by the stages that read an inference folder and calibrate on
    files (ptq, prune_distill): the folder exists and the calibration path fits its source."""
    if model_dir is not None and not Path(model_dir).is_dir():
        raise ConfigError(f"{where}.model_dir: '{model_dir}' is not a folder.",
                          "point it at the folder holding the .pdmodel and .pdiparams.")
    if calibration.source == "image_folder" and not Path(str(calibration.path)).is_dir():
        raise ConfigError(f"{where}.calibration.path: '{calibration.path}' is not a folder.",
                          "point it at a folder of images (searched recursively).")
    if calibration.source == "npz" and not Path(str(calibration.path)).is_file():
        raise ConfigError(f"{where}.calibration.path: '{calibration.path}' does not exist.",
                          "write it with numpy.savez(path, input_name=array, ...).")


def check_artifact_ref(ref: str, pipeline: Any, stage_id: str, key: str) -> None:
    """``ref`` must be an earlier stage id or an existing folder (plan time)."""
    earlier = earlier_stages(pipeline, stage_id)
    if ref in earlier or Path(ref).is_dir():
        return
    if ref in pipeline.stages:
        raise ConfigError(f"stages.{stage_id}.{key}: stage '{ref}' runs after '{stage_id}'.",
                          "name a stage written before this one.")
    raise ConfigError(f"stages.{stage_id}.{key}: '{ref}' is neither an earlier stage id nor "
                      f"an artifact folder.",
                      f"use one of: {', '.join(earlier) or '(no earlier stage)'}, or a path to "
                      f"a folder with manifest.json.")


def resolve_artifact(ref: str, ctx: StageContext, kind: str | None = None) -> Artifact:
    """An earlier stage's artifact (by id) or a folder on disk."""
    from paddleopt.artifact import Artifact

    art = ctx.artifacts.get(ref) if ref in ctx.artifacts else Artifact.open(ref)
    if kind is not None and art.kind != kind:
        raise UserError(f"'{ref}' is {a_an(art.kind)} artifact ({art.path}); "
                        f"{a_an(kind)} is needed.",
                        f"point it at a stage or folder that holds {a_an(kind)}.")
    return art


def input_shape(input_specs: list[Any]) -> list[list[int]]:
    """Shapes for tracing one sample: -1 (batch or dynamic) becomes 1."""
    return [[1 if d == -1 else d for d in s.shape] for s in input_specs]


def accuracy_of(model: Any, feeds: list[np.ndarray], labels: np.ndarray,
                batch_size: int = 256) -> float:
    """Top-1 accuracy of a dygraph model on numpy inputs (eval mode, no grad)."""
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    training = model.training
    model.eval()
    correct = 0
    try:
        with paddle.no_grad():
            for i in range(0, len(labels), batch_size):
                out = model(*[paddle.to_tensor(f[i:i + batch_size]) for f in feeds])
                out = out[0] if isinstance(out, (list, tuple)) else out
                correct += int((out.numpy().argmax(-1) == labels[i:i + batch_size]).sum())
    finally:
        if training:
            model.train()
    return correct / max(1, len(labels))


def held_out(data: Any, count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` validation samples for decisions taken inside a stage (sensitivities,
    candidates), so the test split stays untouched; the eval split when there is no val.
    Image and text bundles both provide them (``val_feeds``)."""
    return data.val_feeds(count)


def finetune(model: Any, data: Any, cfg: TrainConfig, ctx: StageContext, **fit_kwargs: Any
             ) -> dict[str, Any]:
    """``engine.loop.fit`` on the pipeline's data; returns its result."""
    from paddleopt.engine.loop import fit

    ctx.log.info("[%s] fine-tuning %d epoch(s)", ctx.stage_id, cfg.epochs)
    return fit(model, data.train_loader(), data.eval_loader(), cfg, log=ctx.log, **fit_kwargs)


def steps_per_run(data: Any, cfg: TrainConfig) -> int:
    """Optimizer updates a fine-tuning run will make (for schedules such as GMP)."""
    steps = len(data.train_loader())
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    accumulate = max(1, cfg.fleet.accumulate_steps)
    return cfg.epochs * -(-steps // accumulate)


def checkpoint_manifest(model: Any, spec: dict[str, Any], data: Any, out_dir: Path,
                        metrics: dict[str, Any], src: Artifact | None = None) -> Manifest:
    """Save ``model`` as ``model.pdparams`` and describe it as a checkpoint artifact."""
    from paddleopt.artifact import IOSpec, Manifest, TensorSpec
    from paddleopt.engine.loop import count_flops, count_params, is_rank0
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    if is_rank0():
        paddle.save(model.state_dict(), str(out_dir / "model.pdparams"))
    input_specs = data.input_specs()
    base = {"params": count_params(model), "flops": count_flops(model, input_specs)}
    fields = data.manifest_fields()
    if src is not None:
        manifest = src.manifest.derive(kind="checkpoint", files={"weights": "model.pdparams"},
                                       model=spec, precision="fp32", quantization={})
        manifest.io = IOSpec(inputs=input_specs,
                             outputs=[TensorSpec("logits", [-1, spec["num_classes"]])])
        for key, value in fields.items():
            setattr(manifest, key, value)
    else:
        manifest = Manifest(kind="checkpoint", files={"weights": "model.pdparams"},
                            io=IOSpec(inputs=input_specs,
                                      outputs=[TensorSpec("logits", [-1, spec["num_classes"]])]),
                            model=spec, **fields)
    manifest.metrics.update(base)
    manifest.metrics.update(metrics)
    return manifest


def rank_manifest(metrics: dict[str, Any]) -> Manifest:
    """What a rank other than 0 returns: no files, its training metrics (the launcher collects
    throughput from them; the artifact is rank 0's)."""
    from paddleopt.artifact import Manifest

    return Manifest(kind="checkpoint", files={}, metrics=dict(metrics))


def fit_metrics(result: dict[str, Any]) -> dict[str, Any]:
    final = result.get("final", {})
    return {"accuracy": final.get("eval_accuracy"), "loss": final.get("eval_loss"),
            "eval_samples": final.get("eval_samples"),
            "train_seconds": round(result.get("seconds", 0.0), 1),
            "history": result.get("history", [])}
