"""`distill`: train a student with a teacher's soft labels (and optionally its features).

The student is the input checkpoint (e.g. a pruned model), or a fresh network built from the
``student`` model spec. The teacher is an earlier stage's checkpoint or a checkpoint folder
(``teacher.artifact``), a model spec plus weights file (``teacher.model`` + ``weights``), or,
when a ``student`` spec is given and no teacher, the input checkpoint itself (big -> small).

Loss: ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)`` plus
``feature_weight *`` the MSE of each feature pair (1x1 adapters when widths differ; adapters
are trained but not saved). Training goes through ``engine.loop.fit`` (loss_fn/parameters).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddleopt.artifact import Artifact, Manifest
from paddleopt.config.sections import ModelConfig
from paddleopt.stages._compress import FinetuneConfig, FinetuneStage
from paddleopt.stages.base import StageContext
from paddleopt.utils.errors import ConfigError, UserError


@dataclass
class TeacherConfig:
    """Attributes:
        artifact: an earlier stage id, or a checkpoint folder (manifest.json + weights).
        model: a model spec (arch, num_classes, in_channels, width_mult, kwargs) ...
        weights: ... and its .pdparams file (state dict of that network).
    """

    artifact: str | None = None
    model: ModelConfig | None = None
    weights: str | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.artifact is not None and self.model is not None:
            return ("teacher: give artifact or model + weights, not both",
                    "remove one of teacher.artifact / teacher.model")
        if self.model is not None and not self.weights:
            return ("teacher.model needs teacher.weights (a .pdparams file)",
                    "set teacher.weights: path/to/teacher.pdparams, or use teacher.artifact")
        if self.weights is not None and self.model is None:
            return ("teacher.weights needs teacher.model (the network the weights belong to)",
                    "add teacher.model: {arch: ..., kwargs: {...}}")
        return None


@dataclass
class DistillConfig:
    """Attributes:
        teacher: where the teacher comes from (see ``TeacherConfig``); default: the input
            checkpoint when ``student`` is a spec.
        student: build the student fresh from this model spec; default: the input checkpoint.
        temperature: softmax temperature of the soft labels (> 0).
        alpha: weight of the soft-label term; 1 - alpha goes to the hard-label loss. 0 (and
            no feature_pairs) trains on labels only without running the teacher: the
            no-teacher baseline of the same student and recipe.
        feature_pairs: {student sublayer: teacher sublayer} whose outputs are matched (MSE).
        feature_weight: weight of the summed feature losses.
        finetune: the training recipe of the student (train's keys).
        train_subset: the student learns from only the first N images of the pipeline's
            training data (labels and soft labels), while the teacher may have seen all of
            them: the limited-labels regime where distillation pays most (see
            docs/COMPRESSION.md). null: the whole training data.
    """

    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: ModelConfig | None = None
    temperature: float = 4.0
    alpha: float = 0.9
    feature_pairs: dict[str, str] = field(default_factory=dict)
    feature_weight: float = 1.0
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    train_subset: int | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.train_subset is not None and self.train_subset < 1:
            return (f"train_subset must be >= 1 or null, got {self.train_subset}",
                    "use e.g. train_subset: 2000, or null for the whole training data")
        if self.temperature <= 0:
            return f"temperature must be > 0, got {self.temperature}", "use e.g. temperature: 4"
        if not 0 <= self.alpha <= 1:
            return (f"alpha must be in [0, 1], got {self.alpha}",
                    "use e.g. alpha: 0.9 (1.0 = soft labels only)")
        if self.feature_weight < 0:
            return "feature_weight must be >= 0", "use e.g. feature_weight: 1.0"
        return None


class DistillStage(FinetuneStage):
    name = "distill"
    Config = DistillConfig
    consumes = ("checkpoint",)
    optional_input = True  # a student spec + teacher.model/weights need no input
    produces = "checkpoint"
    extras = ("slim",)

    def check(self, pipeline: Any, stage_id: str) -> None:
        from paddleopt.models.registry import check_arch
        from paddleopt.stages._compress import check_artifact_ref, earlier_stages
        from paddleopt.stages.plan_checks import check_model_kwargs

        super().check(pipeline, stage_id)  # fleet options
        cfg: DistillConfig = self.config
        where = f"stages.{stage_id}"
        if cfg.feature_pairs and cfg.finetune.fleet.distributed:
            # DataParallel all-reduces the student's gradients only; the adapters that map
            # student features to the teacher's would drift apart on each rank.
            raise ConfigError(f"{where}: feature distillation (feature_pairs) runs in one "
                              f"process; finetune.fleet asks for "
                              f"{cfg.finetune.fleet.world_size}.",
                              "remove finetune.fleet.nproc/ips, or distill logits only "
                              "(feature_pairs: {}) across processes.")
        has_input = bool(earlier_stages(pipeline, stage_id))
        if cfg.student is None and not has_input:
            raise ConfigError(f"{where}: distill has no student: it is the first stage and "
                              f"no student spec is given.",
                              "put a train/prune stage before it, or set student: {arch: ...}.")
        if cfg.student is not None:
            check_arch(cfg.student.arch)
            check_model_kwargs(cfg.student.arch, cfg.student.kwargs, f"{where}.student")
        if cfg.teacher.model is not None:
            check_model_kwargs(cfg.teacher.model.arch, cfg.teacher.model.kwargs,
                               f"{where}.teacher.model")
        teacher = cfg.teacher
        if teacher.artifact is not None:
            check_artifact_ref(teacher.artifact, pipeline, stage_id, "teacher.artifact")
        elif teacher.model is not None:
            check_arch(teacher.model.arch)
            if not Path(teacher.weights or "").is_file():
                raise ConfigError(f"{where}.teacher.weights: '{teacher.weights}' does not "
                                  f"exist.", "point it at the teacher's .pdparams file.")
        elif (cfg.student is None or not has_input) and (cfg.alpha > 0 or cfg.feature_pairs):
            raise ConfigError(f"{where}: distill has no teacher.",
                              "set teacher: {artifact: <earlier stage id>} (or model + "
                              "weights); with a student spec the input checkpoint is the "
                              "default teacher.")

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.compress.distill import Distiller
        from paddleopt.engine.loop import count_params, evaluate
        from paddleopt.models.registry import build_model, model_spec
        from paddleopt.stages._compress import checkpoint_manifest, finetune, fit_metrics
        from paddleopt.utils.imports import import_paddle
        from paddleopt.utils.seed import seed_everything

        launched = self.launch_if_distributed(src, out_dir, ctx)
        if launched is not None:
            return launched
        paddle = import_paddle()
        cfg: DistillConfig = self.config
        if cfg.student is None and src is None:
            raise UserError("distill has no student checkpoint.", "give a student spec.")
        # The student is built first, right after seeding, so that its initial weights do
        # not depend on the teacher (alpha 0, the no-teacher baseline, starts identically).
        data, student = self.prepare(None if cfg.student is not None else src, ctx)
        if cfg.train_subset is not None:
            data = _subset(data, cfg.train_subset)
        train_samples = len(data.train_split)
        ctx.log.info("[%s] the student learns from %d training samples", ctx.stage_id,
                     train_samples)
        if cfg.student is not None:
            spec = model_spec(cfg.student)
            student = build_model(spec)
            student_src = None  # a new network: its lineage starts here
        else:
            assert src is not None
            spec = dict(src.manifest.model)
            student_src = src
        labels_only = cfg.alpha == 0 and not cfg.feature_pairs
        teacher, teacher_ref = (None, None) if labels_only else self._teacher(src, ctx)
        teacher_eval = evaluate(teacher, data.eval_loader()) if teacher is not None else None
        sample = next(iter(data.train_loader()))[:-1] if cfg.feature_pairs else None
        seed_everything(ctx.seed)  # the same batch order whatever ran since the first seed
        if teacher is None:
            # alpha 0 without features: the loss is plain cross entropy; the teacher would
            # only cost time. This is the no-teacher baseline with the identical recipe.
            result = finetune(student, data, cfg.finetune, ctx)
            adapters = 0
        else:
            distiller = Distiller(
                student, teacher, temperature=cfg.temperature, alpha=cfg.alpha,
                feature_pairs=cfg.feature_pairs, feature_weight=cfg.feature_weight,
                label_smoothing=cfg.finetune.label_smoothing,
                sample_inputs=[paddle.to_tensor(x) for x in sample] if sample else None)
            try:
                result = finetune(student, data, cfg.finetune, ctx, loss_fn=distiller.loss_fn,
                                  parameters=distiller.parameters())
            finally:
                distiller.remove()  # the student is a plain Layer again, ready to save/export
            adapters = len(distiller.adapters)
        metrics = fit_metrics(result)
        ctx.log.info("[%s] student accuracy %.4f (%d params); teacher %s", ctx.stage_id,
                     metrics["accuracy"] or 0.0, count_params(student),
                     "not used (alpha 0)" if teacher is None else
                     f"{teacher_eval['accuracy']:.4f} ({count_params(teacher)} params)")
        return checkpoint_manifest(student, spec, data, out_dir, {
            **metrics,
            "teacher_accuracy": teacher_eval["accuracy"] if teacher_eval else None,
            "teacher_params": count_params(teacher) if teacher is not None else None,
            "distill": {"teacher": teacher_ref, "temperature": cfg.temperature,
                        "alpha": cfg.alpha, "feature_pairs": dict(cfg.feature_pairs),
                        "adapters": adapters, "train_samples": train_samples}},
            src=student_src)

    def _teacher(self, src: Artifact | None, ctx: StageContext) -> tuple[Any, str]:
        from paddleopt.artifact import IOSpec
        from paddleopt.models.loading import load_checkpoint_model
        from paddleopt.models.registry import model_spec
        from paddleopt.stages._compress import resolve_artifact

        teacher = self.config.teacher
        if teacher.artifact is not None:
            art = resolve_artifact(teacher.artifact, ctx, "checkpoint")
            return load_checkpoint_model(art), teacher.artifact
        if teacher.model is not None:
            weights = Path(str(teacher.weights))
            manifest = Manifest(kind="checkpoint", files={"weights": weights.name},
                                io=IOSpec(), model=model_spec(teacher.model))
            return load_checkpoint_model(Artifact(weights.parent, manifest)), str(weights)
        if src is None:
            raise UserError("distill has no teacher.", "set teacher.artifact.")
        return load_checkpoint_model(src), str(src.path)


def _subset(data: Any, count: int) -> Any:
    """The same data bundle with only the first ``count`` training samples (never more than
    the pipeline's own ``data.train_subset``)."""
    import dataclasses

    limit = data.cfg.train_subset
    cfg = dataclasses.replace(data.cfg, train_subset=min(count, limit or count))
    return dataclasses.replace(data, cfg=cfg)
