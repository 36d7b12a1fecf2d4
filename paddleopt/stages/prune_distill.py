"""`prune_distill`: structured channel pruning of a Paddle inference model, recovered by
distillation from its own fp32 outputs: no training code, no checkpoint, no labels.

Each prunable conv (not the first, not depthwise, not one flattened with its spatial
positions into a matmul) gets its own ratio: a sensitivity analysis on held-out inputs
(``compress.prune_static``) spreads ``flops_reduction`` so that insensitive convs lose more
channels (``spread: uniform``: one ratio for all; or explicit ``ratios``). The pruned
program is then trained to match the unpruned one on the unlabelled inputs
(``compress.static_distill``: frozen BatchNorm statistics, logits matched, cosine lr). The
artifact is an fp32 inference model with fewer FLOPs; its manifest records the ratios, the
sensitivities, FLOPs before/after, fp32 agreement (or labelled accuracy) on held-out inputs
and the latency paired with the unpruned model's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paddleopt.artifact import Artifact, Manifest
from paddleopt.compress.recipe import DistillSettings
from paddleopt.stages._int8 import LatencyConfig
from paddleopt.stages._ptq.config import CalibrationConfig, EvaluationConfig
from paddleopt.stages.base import Stage, StageContext
from paddleopt.utils.errors import ConfigError, StageError, UserError


@dataclass
class PruneDistillConfig:
    """Attributes:
        model_dir: prune this Paddle inference folder instead of the input artifact.
        calibration: the unlabelled training inputs (npz, image_folder or pipeline; as
            ptq's calibration): ``count`` samples in batches of ``batch_size``, cycled.
        evaluation: held-out data: agreement (default: fp32 agreement on inputs after the
            training ones, or ``path``), npz with labels, or pipeline.
        flops_reduction: fraction of FLOPs to remove (batch 1), in (0, 1).
        ratios: explicit {conv weight: share of output channels removed} instead.
        spread: sensitivity (per-conv ratios from the analysis) or uniform (one ratio).
        sensitivity_samples: held-out inputs the analysis runs on.
        distill: the recovery training (steps, learning_rate, loss, nodes, lr_schedule).
        latency: how the pruned and unpruned models are timed (paired).
        max_accuracy_drop: fail when the held-out score drops more (null: record only).
    """

    model_dir: str | None = None
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    evaluation: EvaluationConfig = field(
        default_factory=lambda: EvaluationConfig(source="agreement"))
    flops_reduction: float | None = 0.5
    ratios: dict[str, float] = field(default_factory=dict)
    spread: Literal["sensitivity", "uniform"] = "sensitivity"
    sensitivity_samples: int = 256
    distill: DistillSettings = field(
        default_factory=lambda: DistillSettings(steps=2000, learning_rate=1e-3))
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    max_accuracy_drop: float | None = None

    def validate(self) -> tuple[str, str] | None:
        if bool(self.ratios) == (self.flops_reduction is not None):
            return ("give exactly one of flops_reduction and ratios",
                    "e.g. flops_reduction: 0.5, or ratios: {conv2d_1.w_0: 0.5} with "
                    "flops_reduction: null")
        if self.flops_reduction is not None and not 0 < self.flops_reduction < 1:
            return (f"flops_reduction must be in (0, 1), got {self.flops_reduction}",
                    "use e.g. 0.5 to remove half the FLOPs")
        if any(not 0 <= r < 1 for r in self.ratios.values()):
            return "ratios must be in [0, 1)", "use e.g. 0.5 for half the output channels"
        if self.distill.engine != "static":
            return ("prune_distill trains with the static engine only",
                    "remove distill.engine (ACT's pruning is compress.act.act_compress)")
        if self.sensitivity_samples < 1:
            return "sensitivity_samples must be >= 1", "use e.g. 256"
        return None


class PruneDistillStage(Stage):
    name = "prune_distill"
    Config = PruneDistillConfig
    consumes = ("inference",)
    optional_input = True
    produces = "inference"
    extras = ("slim",)

    def check(self, pipeline: Any, stage_id: str) -> None:
        from paddleopt.stages._compress import check_model_dir_and_calibration, earlier_stages

        cfg: PruneDistillConfig = self.config
        where = f"stages.{stage_id}"
        sourced = getattr(pipeline, "source", None) is not None
        if cfg.model_dir is None and not sourced and not earlier_stages(pipeline, stage_id):
            raise ConfigError(f"{where}: prune_distill is the first stage but has no "
                              f"model_dir.", "set model_dir (a Paddle inference folder) or "
                              "put an export stage before it.")
        check_model_dir_and_calibration(cfg.model_dir, cfg.calibration, where)

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.utils.grammar import a_an
        from paddleopt.utils.seed import seed_everything

        cfg: PruneDistillConfig = self.config
        seed_everything(ctx.seed)
        if cfg.model_dir is not None:
            src = Artifact.open(cfg.model_dir)
            if src.kind != "inference" or src.manifest.precision != "fp32":
                raise UserError(f"model_dir '{cfg.model_dir}' holds {a_an(src.kind)} "
                                f"{src.manifest.precision} artifact.",
                                "point it at an fp32 Paddle inference model folder.")
        assert src is not None
        return _PruneDistill(cfg, src, out_dir, ctx).execute()


class _PruneDistill:
    def __init__(self, cfg: PruneDistillConfig, src: Artifact, out_dir: Path,
                 ctx: StageContext) -> None:
        from paddleopt.stages._ptq.data import PTQData

        self.cfg, self.src, self.out_dir, self.ctx = cfg, src, out_dir, ctx
        self.data = PTQData(cfg, src, ctx)  # type: ignore[arg-type]  # same two sections
        self._fp32: Any = None
        self.data.fp32_predictor = self.fp32_predictor

    def fp32_predictor(self) -> Any:
        from paddleopt.stages import _int8

        if self._fp32 is None:
            self._fp32 = _int8.predictor(self.src, self.cfg.latency.threads)
        return self._fp32

    def score(self, art: Artifact, data: Any) -> float | None:
        from paddleopt.stages import _int8

        if data is None:
            return None
        feeds, labels = data
        pred = _int8.predictor(art, self.cfg.latency.threads)
        if hasattr(labels, "score"):
            from paddleopt.metrics.reference import run_all

            return float(labels.score(run_all(pred, feeds))["score"])
        return _int8.accuracy(pred, feeds, labels)

    def plan_ratios(self) -> tuple[dict[str, float], dict[str, Any]]:
        from paddleopt.compress import prune_static
        from paddleopt.compress.act import prunable_convs

        cfg, log, sid = self.cfg, self.ctx.log, self.ctx.stage_id
        if cfg.ratios:
            return dict(cfg.ratios), {"mode": "ratios"}
        params = prunable_convs(self.src.file("model"))
        if not params:
            raise UserError(f"'{self.src.path}' has no conv that channel pruning can shrink.",
                            "prune_distill prunes conv output channels; this model has none "
                            "prunable (first, depthwise and flattened convs keep theirs).")
        if cfg.spread == "uniform":
            sens = {p: {f"{r:g}": r for r in prune_static.GRID} for p in params}
        else:
            feeds, where = self.data.heldout_inputs()
            feeds = [f[:cfg.sensitivity_samples] for f in feeds]
            log.info("[%s] sensitivity of %d convs on %d held-out inputs (%s)", sid,
                     len(params), len(feeds[0]), where)
            sens = prune_static.sensitivities(self.src.path, feeds, params)
            (self.out_dir / "sensitivity.json").write_text(json.dumps(sens, indent=1))
        ratios, before, after = prune_static.ratios_for_flops(self.src.path, sens,
                                                              float(cfg.flops_reduction))
        log.info("[%s] %s spread: FLOPs %s -> %s (%.0f%%), ratios %s", sid, cfg.spread,
                 f"{before:,}", f"{after:,}", 100 * after / before,
                 {k: round(v, 2) for k, v in ratios.items()})
        return ratios, {"mode": f"flops:{cfg.spread}"}

    def execute(self) -> Manifest:
        from paddleopt.compress.act import training_batches
        from paddleopt.compress.prune_static import program_flops  # noqa: F401 (slim check)
        from paddleopt.compress.ptq import model_feeds
        from paddleopt.compress.static_distill import static_distill
        from paddleopt.stages import _int8
        from paddleopt.stages._ptq.search import recipe_kwargs

        cfg, ctx = self.cfg, self.ctx
        ratios, how = self.plan_ratios()
        source, kwargs = self.data.calibration()
        feeds = model_feeds(self.src.path)[2]
        batches = training_batches(feeds, source, cfg.calibration.batch_size,
                                   -(-cfg.calibration.count // cfg.calibration.batch_size),
                                   kwargs.get("preprocess"))
        report = static_distill(self.src.path, self.out_dir, batches,
                                **recipe_kwargs(cfg.distill), prune=ratios, log=ctx.log)
        from paddleopt.compress.act import inference_flops

        before, after = inference_flops(self.src.path), inference_flops(self.out_dir)
        manifest = self.src.manifest.derive(
            kind="inference", precision="fp32",
            files={"model": "model.pdmodel", "params": "model.pdiparams"},
            preprocess=self.data.preprocess)
        if (self.out_dir / "sensitivity.json").is_file():
            manifest.files["sensitivity"] = "sensitivity.json"
        art = Artifact(self.out_dir, manifest)
        data = self.data.eval_set()
        base = self.score(self.src, data)
        mine = self.score(art, data)
        pred = _int8.predictor(art, cfg.latency.threads)
        lat_feeds = _latency_feeds(pred, data, cfg.latency.batch_size, self.src)
        timed, ref = _int8.paired_timing(pred, self.fp32_predictor(), lat_feeds, cfg.latency)
        speedup = round(ref["latency_ms"]["p50"] / timed["latency_ms"]["p50"], 3)
        drop = None if mine is None or base is None else round(base - mine, 6)
        manifest.metrics.update({
            "pruning": {**how, "ratios": ratios, "criterion": "l1_norm"},
            "flops_before": before, "flops_after": after, "flops": after,
            "flops_share": round(after / before, 4),
            "distill": {"steps": report.steps, "batch_size": report.samples_per_step,
                        "learning_rate": cfg.distill.learning_rate,
                        "lr_schedule": cfg.distill.lr_schedule, "loss": cfg.distill.loss,
                        "targets": report.targets, "first_loss": report.first_loss,
                        "last_loss": report.last_loss, "train_seconds": report.seconds},
            "accuracy": mine, "fp32_accuracy": base, "accuracy_drop": drop,
            "latency": {"pruned": timed["latency_ms"], "unpruned": ref["latency_ms"],
                        "batch_size": cfg.latency.batch_size, "threads": cfg.latency.threads},
            "speedup_vs_unpruned": speedup})
        manifest.checks["flops_reduced"] = after < before
        ctx.log.info("[%s] pruned: FLOPs %.0f%% of the unpruned, score %s vs %s, %.2fx the "
                     "unpruned speed at batch %d", ctx.stage_id, 100 * after / before, mine,
                     base, speedup, cfg.latency.batch_size)
        if cfg.max_accuracy_drop is not None and drop is not None and \
                drop > cfg.max_accuracy_drop:
            raise StageError(f"the pruned model's held-out score dropped {drop:.4f}, more "
                             f"than max_accuracy_drop {cfg.max_accuracy_drop}.",
                             "train longer (distill.steps), prune less (flops_reduction) or "
                             "raise max_accuracy_drop.")
        return manifest


def _latency_feeds(pred: Any, data: Any, batch: int, src: Artifact) -> list[Any]:
    if data is not None:
        return [f[:batch] for f in data[0]]
    from paddleopt.artifact.shapes import dynamic_dim
    from paddleopt.deploy.bench import make_feeds

    return make_feeds(pred.inputs, batch, dynamic_dim=dynamic_dim(src.manifest))
