"""`early_exit`: turn a trained CNN checkpoint into an early-exit inference artifact.

Exit heads are added after chosen units of the backbone (``exits``), the whole network is
fine-tuned jointly (weighted cross entropy at every exit, optionally distilled from the final
head), per-exit confidence thresholds are chosen on held-out (validation) data so that the
accuracy stays within ``max_drop`` points of the input model's, and the network is exported
as chained segments (``paddleopt.earlyexit``). The artifact's own ``model``/``params`` are the
plain single-exit network (every tool that ignores ``early_exit`` sees a normal model);
``load_predictor`` runs the segments and stops each sample at its first confident exit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paddleopt.artifact import Artifact, Manifest
from paddleopt.engine.config import OptimizerConfig
from paddleopt.stages._compress import FinetuneConfig, FinetuneStage
from paddleopt.stages.base import StageContext
from paddleopt.utils.errors import ConfigError, UserError


def _default_finetune() -> FinetuneConfig:
    return FinetuneConfig(epochs=1, optimizer=OptimizerConfig(lr=0.01))


@dataclass
class EarlyExitConfig:
    """Attributes:
        exits: unit names an exit head follows (resnet_small: stem, blocks.0, blocks.1...;
            mobilenet_v2_small: features.0...); null = at about 1/3 and 2/3 of the units.
        head_pool: exit heads average-pool the feature map to head_pool x head_pool, then
            one linear layer.
        exit_weights: loss weight per exit (null = 1.0 each); the final head has final_weight.
        final_weight: loss weight of the final head.
        distill_alpha: share of each exit's loss taken by the KL to the final head's
            softened predictions (self-distillation); 0 = labels only.
        temperature: softmax temperature of that self-distillation.
        finetune: the joint training recipe (train's keys); 1 epoch at lr 0.01 by default.
        max_drop: accuracy budget in points: thresholds keep the validation accuracy within
            max_drop of the input model's.
        margin: points kept in reserve below the budget on the calibration data, so that
            the held-out test accuracy also stays within it.
        calibration_samples: validation samples the thresholds are chosen on.
        cost: what a sample's cost is when choosing thresholds: measured batch-1 latency of
            the segments on Paddle Inference ("latency", includes per-call overhead, which
            dominates small models), or FLOPs ("flops", deterministic).
        formats: segment formats written besides Paddle inference: onnx (ONNX Runtime,
            OpenVINO), lite (x86 .nb, converted in a subprocess).
        tolerance: max abs diff allowed between the chained segments (Paddle Inference) and
            the trained network, per exit.
        head_runtime: where exit heads run: "host" (numpy in the runner; the exit segments
            return only their feature map) or "model" (inside each segment's program). At
            batch 1 per-operator dispatch weighs heavily on small models, so host heads
            make the exit path cheaper (docs/EARLY_EXIT.md).
    """

    exits: list[str] | None = None
    head_pool: int = 4
    exit_weights: list[float] | None = None
    final_weight: float = 1.0
    distill_alpha: float = 0.5
    temperature: float = 2.0
    finetune: FinetuneConfig = field(default_factory=_default_finetune)
    max_drop: float = 0.5
    margin: float = 0.1
    calibration_samples: int = 5000
    cost: Literal["latency", "flops"] = "latency"
    formats: list[Literal["onnx", "lite"]] = field(default_factory=list)
    tolerance: float = 1e-4
    head_runtime: Literal["host", "model"] = "host"

    def validate(self) -> tuple[str, str] | None:
        if self.exits is not None and not self.exits:
            return "exits is empty", "name at least one unit, or use null for the default"
        if self.exit_weights is not None and self.exits is not None \
                and len(self.exit_weights) != len(self.exits):
            return (f"exit_weights has {len(self.exit_weights)} values for "
                    f"{len(self.exits)} exits", "give one weight per exit, or null")
        if self.head_pool < 1:
            return "head_pool must be >= 1", "use e.g. head_pool: 4"
        if not 0 <= self.distill_alpha <= 1:
            return "distill_alpha must be in [0, 1]", "use e.g. distill_alpha: 0.5"
        if self.temperature <= 0:
            return "temperature must be > 0", "use e.g. temperature: 2"
        if not 0 <= self.max_drop <= 100 or self.margin < 0:
            return "max_drop must be in [0, 100] points and margin >= 0", \
                "use e.g. max_drop: 0.5, margin: 0.1"
        if self.calibration_samples < 10:
            return "calibration_samples must be >= 10", "use e.g. calibration_samples: 5000"
        if self.tolerance <= 0:
            return "tolerance must be > 0", "use e.g. tolerance: 1.0e-4"
        return None


class EarlyExitStage(FinetuneStage):
    name = "early_exit"
    Config = EarlyExitConfig
    consumes = ("checkpoint",)
    produces = "inference"

    def check(self, pipeline: Any, stage_id: str) -> None:
        from paddleopt.earlyexit.network import BACKBONES

        super().check(pipeline, stage_id)
        arch = pipeline.model.arch
        if arch not in BACKBONES:
            raise ConfigError(f"stages.{stage_id}: early_exit supports the CNN families "
                              f"{', '.join(BACKBONES)}; model.arch is '{arch}'.",
                              "use model.arch: resnet_small or mobilenet_v2_small, or remove "
                              "the early_exit stage.")
        if self.config.exits:
            from paddleopt.earlyexit.network import backbone_units
            from paddleopt.models.registry import build_model, model_spec

            names = [n for n, _ in backbone_units(build_model(model_spec(pipeline.model)),
                                                  arch)]
            wrong = [e for e in self.config.exits if e not in names[:-1]]
            if wrong:
                raise ConfigError(f"stages.{stage_id}.exits: {', '.join(wrong)} is not a unit "
                                  f"of {arch} an exit can follow.",
                                  f"use names from: {', '.join(names[:-1])}.")
        if self.config.finetune.fleet.distributed:
            raise ConfigError(f"stages.{stage_id}.finetune.fleet: early_exit trains in one "
                              f"process.", "remove finetune.fleet.nproc/ips.")

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.earlyexit.calibrate import choose_thresholds, simulate
        from paddleopt.earlyexit.network import backbone_units, default_exits, make_multi_exit
        from paddleopt.earlyexit.training import exit_logits, exit_loss
        from paddleopt.stages._compress import accuracy_of, finetune, held_out

        if src is None:
            raise UserError("early_exit needs a trained checkpoint as input.",
                            "put a train stage before it.")
        cfg: EarlyExitConfig = self.config
        data, model = self.prepare(src, ctx)
        spec = dict(src.manifest.model)
        arch = spec["arch"]
        input_shape = list(src.manifest.io.inputs[0].shape)
        names = [n for n, _ in backbone_units(model, arch)]
        exits = list(cfg.exits) if cfg.exits else default_exits(names)
        val_x, val_y = held_out(data, cfg.calibration_samples)
        test_x, test_y = data.eval_feeds()
        reference = {"val": accuracy_of(model, val_x, val_y),
                     "test": accuracy_of(model, test_x, test_y)}
        ctx.log.info("[%s] exits after %s; input model accuracy val %.4f test %.4f",
                     ctx.stage_id, ", ".join(exits), reference["val"], reference["test"])

        net = make_multi_exit(model, arch, exits, spec["num_classes"], input_shape,
                              cfg.head_pool)
        weights = list(cfg.exit_weights) if cfg.exit_weights else [1.0] * len(exits)
        loss = exit_loss(net, weights, cfg.final_weight, cfg.distill_alpha, cfg.temperature,
                         cfg.finetune.label_smoothing)
        result = finetune(net, data, cfg.finetune, ctx, loss_fn=loss)
        net.eval()
        model.eval()

        from paddleopt.utils.imports import import_paddle

        # the multi-exit weights, to rebuild the network (make_multi_exit + set_state_dict)
        import_paddle().save(net.state_dict(), str(out_dir / "multi_exit.pdparams"))
        manifest, folders = self._export(net, model, src, input_shape, out_dir, ctx)
        costs, full_cost, unit = self._costs(cfg.cost, net, model, folders, manifest,
                                             out_dir, input_shape)
        val_logits = exit_logits(net, val_x)
        test_logits = exit_logits(net, test_x)
        target = reference["val"] - (cfg.max_drop - cfg.margin) / 100
        chosen = choose_thresholds(val_logits, val_y, costs, target)
        if not chosen.met:
            ctx.log.warning("[%s] even the final head misses the accuracy target %.4f on "
                            "validation data; every exit is disabled", ctx.stage_id, target)
        test = simulate(test_logits, test_y, chosen.thresholds, costs)
        test.met = test.accuracy >= reference["test"] - cfg.max_drop / 100 - 1e-12
        if test.mean_cost >= full_cost:
            ctx.log.warning("[%s] early exit does not pay on this model: expected cost %.4g "
                            "vs %.4g %s for the single-exit model", ctx.stage_id,
                            test.mean_cost, full_cost, unit)
        per_exit = [round(float((x.argmax(-1) == test_y).mean()), 5) for x in test_logits]
        ctx.log.info("[%s] thresholds %s: test accuracy %.4f (input model %.4f), exits %s, "
                     "%.2fx lower expected %s", ctx.stage_id, chosen.thresholds, test.accuracy,
                     reference["test"], test.histogram, full_cost / max(test.mean_cost, 1e-9),
                     unit)
        formats = {"inference": [str(f.relative_to(out_dir)) for f in folders]}
        for fmt in cfg.formats:
            from paddleopt.earlyexit.package import convert_segments

            converted = convert_segments(folders, fmt, ctx)
            formats["onnx" if fmt == "onnx" else "lite"] = [str(f.relative_to(out_dir))
                                                           for f in converted]
        manifest.early_exit = {
            "exits": exits, "head_pool": cfg.head_pool, "head_runtime": cfg.head_runtime,
            "thresholds": chosen.thresholds,
            "segments": formats, "max_drop_points": cfg.max_drop,
            "cost": {"unit": unit, "segments": [round(c, 4) for c in costs],
                     "single_exit": round(full_cost, 4)},
            "reference_accuracy": reference,
            "calibration": {"split": "val", "samples": len(val_y), "target": round(target, 5),
                            **chosen.as_dict(full_cost)},
            "test": {"split": "test", "samples": len(test_y), **test.as_dict(full_cost),
                     "accuracy_drop_points": round((reference["test"] - test.accuracy) * 100,
                                                   3),
                     "per_exit_accuracy": per_exit},
        }
        manifest.metrics.update({
            "accuracy": test.accuracy, "single_exit_accuracy": per_exit[-1],
            "input_accuracy": reference["test"], "eval_samples": len(test_y),
            "train_seconds": round(result.get("seconds", 0.0), 1),
            "expected_speedup": round(full_cost / max(test.mean_cost, 1e-9), 3)})
        return manifest

    def _export(self, net: Any, model: Any, src: Artifact, input_shape: list[int],
                out_dir: Path, ctx: StageContext) -> tuple[Manifest, list[Path]]:
        """The plain model as model/params, the segments, and their parity with ``net``."""
        import numpy as np

        from paddleopt.earlyexit.package import chain_outputs, save_segments
        from paddleopt.earlyexit.training import exit_logits
        from paddleopt.export import parity
        from paddleopt.stages.export import sample_inputs
        from paddleopt.utils.imports import import_paddle
        from paddleopt.utils.jit import save_layer

        paddle = import_paddle()
        specs = [paddle.static.InputSpec(list(s.shape), s.dtype, s.name)
                 for s in src.manifest.io.inputs]
        save_layer(model, str(out_dir / "model"), input_spec=specs)
        (out_dir / "model.pdiparams.info").unlink(missing_ok=True)
        manifest = src.manifest.derive(kind="inference", files={
            "model": "model.pdmodel", "params": "model.pdiparams",
            "weights": "multi_exit.pdparams"})
        host = self.config.head_runtime == "host"
        folders = save_segments(net, manifest, input_shape, out_dir, host_heads=host)
        heads = None
        if host:
            from paddleopt.earlyexit.runner import load_heads

            manifest.files["exit_heads"] = "exits/heads.npz"
            heads = load_heads(out_dir / "exits" / "heads.npz")
        feeds, source = sample_inputs(src, 64, ctx)
        expected = exit_logits(net, feeds)
        actual = chain_outputs(folders, feeds[0], heads)
        diff = max(float(np.abs(a - e).max()) for a, e in zip(actual, expected))
        manifest.checks["early_exit_parity"] = {"max_abs_diff": diff, "inputs": source,
                                                "samples": len(feeds[0])}
        if diff > self.config.tolerance:
            raise UserError(f"the chained segments differ from the trained network by {diff:.3g}"
                            f" (> tolerance {self.config.tolerance}).",
                            "raise stages.<early_exit>.tolerance, or report the model.")
        plain = parity.dygraph_outputs(model, feeds)
        manifest.checks["single_exit_parity"] = {
            "max_abs_diff": float(np.abs(plain[0] - expected[-1]).max())}
        ctx.log.info("[%s] %d segments; chained vs trained max abs diff %.2g", ctx.stage_id,
                     len(folders), diff)
        return manifest, folders

    @staticmethod
    def _costs(kind: str, net: Any, model: Any, folders: list[Path], manifest: Manifest,
               out_dir: Path, input_shape: list[int]) -> tuple[list[float], float, str]:
        """Cumulative cost of leaving at each exit (final last) and the plain model's."""
        import itertools

        from paddleopt.earlyexit.package import path_latency, segment_flops

        if kind == "flops":
            per, full = segment_flops(net, model, input_shape)
            return list(itertools.accumulate(per)), full, "MFLOPs"
        heads = None
        if "exit_heads" in manifest.files:
            from paddleopt.earlyexit.runner import load_heads

            heads = load_heads(out_dir / manifest.files["exit_heads"])
        paths, full = path_latency(folders, heads, Artifact(out_dir, manifest), input_shape)
        return paths, full, "ms (Paddle Inference, batch 1, 1 thread)"

