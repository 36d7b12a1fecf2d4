"""`train`: dygraph training of the configured model on the configured data."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paddleopt.artifact import Artifact, IOSpec, Manifest, TensorSpec
from paddleopt.engine.config import TrainConfig
from paddleopt.stages.base import Stage, StageContext


@dataclass
class TrainStageConfig(TrainConfig):
    keep_checkpoints: int = 2  # per-epoch checkpoints kept in checkpoints/
    resume_from_checkpoint: bool = True  # with --resume, continue an interrupted stage
    # true: per-epoch scalars for VisualDL in <stage folder>/visualdl (`visualdl --logdir`).
    # null (default) is left out of the resume fingerprint (see FINGERPRINT_OMIT_NULL).
    visualdl: bool | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.keep_checkpoints < 1:
            return "keep_checkpoints must be >= 1 (resume needs the last one)", \
                "use e.g. keep_checkpoints: 2"
        return TrainConfig.validate(self)


class TrainStage(Stage):
    name = "train"
    Config = TrainStageConfig
    consumes = ("checkpoint",)  # optional: fine-tune from an earlier checkpoint
    optional_input = True
    produces = "checkpoint"

    def check(self, pipeline: Any, stage_id: str) -> None:
        from paddleopt.distributed.runtime import check_fleet
        from paddleopt.models.registry import check_arch

        check_arch(pipeline.model.arch)
        check_fleet(self.config.fleet, pipeline.device, f"stages.{stage_id}")

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.distributed import launch_stage, needs_launch

        if needs_launch(self.config.fleet):  # fleet.nproc > 1: every rank runs what follows
            return launch_stage(self, src, out_dir, ctx)
        from paddleopt.data.loaders import build_data
        from paddleopt.engine.checkpoint import EpochCheckpoints
        from paddleopt.engine.loop import count_flops, count_params, fit, is_rank0
        from paddleopt.models.loading import load_checkpoint_model
        from paddleopt.models.registry import build_model, model_spec
        from paddleopt.utils.imports import import_paddle
        from paddleopt.utils.seed import seed_everything

        paddle = import_paddle()
        cfg: TrainStageConfig = self.config
        seed_everything(ctx.seed)
        data = build_data(ctx.pipeline.data, ctx.seed)
        spec = dict(src.manifest.model) if src is not None else model_spec(ctx.pipeline.model)
        # fine-tuning an earlier checkpoint (pruned ones are resized to their saved shapes)
        model = load_checkpoint_model(src) if src is not None else build_model(spec)
        input_specs = data.input_specs()
        flops = count_flops(model, input_specs)

        checkpoints = EpochCheckpoints(out_dir, keep=cfg.keep_checkpoints)
        last = None
        if ctx.resume and cfg.resume_from_checkpoint:
            last = checkpoints.load_last(model)  # a corrupt checkpoint is an error, not a restart
            if last is not None:
                model.set_state_dict(last["model"])
                ctx.log.info("[%s] resuming after epoch %d", ctx.stage_id, last["epoch"])
        done_history = list(last["history"]) if last else []
        done_seconds = last["train_seconds"] if last else 0.0
        started = time.perf_counter()

        scalars = None
        if cfg.visualdl and is_rank0():
            from paddleopt.engine.visualdl_log import EpochScalars

            scalars = EpochScalars(out_dir / "visualdl", ctx.stage_id)

        def on_epoch_end(epoch: int, metrics: dict, optimizer: Any, _schedule: Any) -> None:
            done_history.append(metrics)
            if scalars is not None:
                scalars.log(epoch + 1, metrics, optimizer.get_lr())
            checkpoints.save(epoch, model, optimizer, metrics, history=list(done_history),
                             train_seconds=done_seconds + time.perf_counter() - started)

        start_epoch = last["epoch"] if last else 0
        result = fit(model, data.train_loader(), data.eval_loader(), cfg, log=ctx.log,
                     on_epoch_end=on_epoch_end, start_epoch=start_epoch,
                     optimizer_state=last["optimizer"] if last else None,
                     rng=last["rng"] if last else None)
        if scalars is not None:
            scalars.close()
        # The manifest covers the whole training, across interruptions.
        result["history"] = done_history
        result["seconds"] = done_seconds + result["seconds"]
        if start_epoch >= cfg.epochs:  # everything was done before the interruption
            from paddleopt.engine.loop import evaluate

            result["final"] = {f"eval_{k}": v for k, v in
                               evaluate(model, data.eval_loader()).items()}
        if is_rank0():  # fit() made the ranks' weights identical; one writer
            paddle.save(model.state_dict(), str(out_dir / "model.pdparams"))
        final = result["final"]
        return Manifest(
            kind="checkpoint",
            files={"weights": "model.pdparams"},
            io=IOSpec(inputs=input_specs,
                      outputs=[TensorSpec("logits", [-1, spec["num_classes"]])]),
            model=spec,
            metrics={"accuracy": final.get("eval_accuracy"), "loss": final.get("eval_loss"),
                     "eval_samples": final.get("eval_samples"), "params": count_params(model),
                     "flops": flops, "epochs": cfg.epochs,
                     "train_seconds": round(result["seconds"], 1),
                     "amp_effective": result["amp_effective"], "amp_dtype": result["amp_dtype"],
                     "history": result["history"]},
            **data.manifest_fields(),
        )
