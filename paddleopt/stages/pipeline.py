"""plan() validates a whole run before any work; run() executes it stage by stage.

Each stage writes into ``work_dir/.NN_<id>.tmp`` and the folder is renamed to ``NN_<id>`` only
after its manifest is saved, so a killed run never leaves a folder that looks finished. With
``resume`` a stage is skipped when its folder's fingerprint (stage type, resolved config,
parent digest, versions) matches the one planned now.
"""
from __future__ import annotations

import datetime as _dt
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddleopt.artifact import Artifact, LineageEntry, Manifest
from paddleopt.artifact.manifest import MANIFEST_NAME, sha256_json
from paddleopt.artifact.workdir import stage_artifacts
from paddleopt.config.loader import dump_yaml, load_config
from paddleopt.config.schema import parse, to_dict
from paddleopt.config.sections import PipelineConfig
from paddleopt.stages.base import Stage, StageContext
from paddleopt.stages.catalog import CATALOG, role_of, stage_class
from paddleopt.utils.errors import ConfigError, StageError, UserError
from paddleopt.utils.imports import INSTALL_HINT, missing_modules
from paddleopt.utils.versions import stack_versions
from paddleopt.utils.grammar import a_an

log = logging.getLogger("paddleopt")

# Stage config keys added after work dirs existed, per stage type: left out of the resume
# fingerprint (at any depth) while null, which means what the stage did before the key
# existed, so finished artifacts stay reusable instead of retraining (distill: ~45 min).
FINGERPRINT_OMIT_NULL: dict[str, tuple[str, ...]] = {
    "ptq": ("onednn_int8_ops", "distill", "qat_distill"),
    "distill": ("train_subset",),
    "train": ("visualdl",),
}


SOURCE_ID = "source"  # `input: source`: the pipeline's source model, not a stage


@dataclass
class PlanStep:
    index: int
    stage_id: str
    stage: Stage
    config_dict: dict[str, Any]  # resolved (defaults filled in), saved into lineage
    input_id: str | None = None  # `input: <stage id>`: read that stage's output, not the last

    @property
    def type(self) -> str:
        return self.stage.name

    @property
    def folder_name(self) -> str:
        return f"{self.index:02d}_{self.stage_id}"


@dataclass
class Plan:
    config: PipelineConfig
    raw: dict[str, Any]
    steps: list[PlanStep]
    work_dir: Path
    source: str = ""
    # The pipeline's `source:` model (opened at plan time); the first stage's input.
    source_artifact: Artifact | None = None

    def describe(self, reuse: dict[str, str] | None = None) -> str:
        """The plan, one line per stage; with ``reuse`` (see ``reuse_status``) each stage
        also says whether its finished folder is reused or why it runs."""
        lines = [f"pipeline '{self.config.name}' -> {self.work_dir}"]
        if self.source_artifact is not None:
            lines.append(f"  source             {self.source_artifact.path} (inference)")
        for step in self.steps:
            cls = type(step.stage)
            src = "/".join(cls.consumes) or "-"
            line = f"  {step.folder_name:<18} {step.type:<10} {src:>22} -> {cls.produces}"
            if reuse is not None and step.stage_id in reuse:
                line = f"{line:<68} {reuse[step.stage_id]}"
            lines.append(line)
        for target in self.config.evaluate.targets:
            lines.append(f"  evaluate {target.name} on {target.backend}")
        return "\n".join(lines)


@dataclass
class RunResult:
    plan: Plan
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    report: Path | None = None


def plan(config: dict[str, Any] | str | Path, overrides: list[str] | None = None,
         source: str = "") -> Plan:
    """Validate schema, every stage config, the kind chain and the extras. No work is done."""
    if not isinstance(config, dict):
        source = source or str(config)
        raw = load_config(config, overrides)
    else:
        from paddleopt.config.loader import apply_overrides

        raw = apply_overrides(config, overrides or [],
                              {sid: ["stages"] for sid in (config.get("stages") or {})})
    from paddleopt.stages.plan_checks import check_device, check_pipeline, check_raw

    check_raw(raw, source)
    pipeline = parse(PipelineConfig, raw, source=source)
    check_pipeline(pipeline, source)
    steps: list[PlanStep] = []
    source_artifact = None
    if pipeline.source is not None:
        from paddleopt.artifact.source import open_source

        source_artifact = open_source(pipeline.source, source)
    produced: str | None = source_artifact.kind if source_artifact is not None else None
    kinds: dict[str, str] = {}  # stage id -> kind it produces
    if source_artifact is not None:
        kinds[SOURCE_ID] = source_artifact.kind  # `input: source` reads the source model
    if SOURCE_ID in pipeline.stages:
        raise ConfigError(f"{source + ': ' if source else ''}stages.{SOURCE_ID}: '{SOURCE_ID}' "
                          f"names the pipeline's source model in `input:`.",
                          "give the stage another id (and a `type:`).")
    for index, (stage_id, stage_raw) in enumerate(pipeline.stages.items(), start=1):
        stage_raw = dict(stage_raw or {})
        type_name = str(stage_raw.pop("type", stage_id))
        input_id = stage_raw.pop("input", None)
        if input_id is not None:
            if input_id not in kinds:
                raise ConfigError(
                    f"{source + ': ' if source else ''}stages.{stage_id}.input: '{input_id}' is "
                    f"not an earlier stage.",
                    f"use one of: {', '.join(kinds) or '(no earlier stage)'}; stages run in the "
                    f"order written.")
            produced = kinds[input_id]
        try:
            cls = stage_class(type_name)
        except ConfigError as exc:
            raise ConfigError(f"{source + ': ' if source else ''}stages.{stage_id}: {exc.message}",
                              exc.fix) from None
        stage_cfg = parse(cls.Config, stage_raw, path=f"stages.{stage_id}", source=source)
        _check_chain(cls, stage_id, produced, source)
        extra = CATALOG[type_name].extra
        for needed in filter(None, (extra, *cls.extras)):
            missing = missing_modules(needed)
            if missing:
                raise ConfigError(
                    f"stage '{stage_id}' ({type_name}) needs the '{needed}' extra, but "
                    f"{', '.join(missing)} is not installed.",
                    f"run: {INSTALL_HINT.format(extra=needed)}")
        stage = cls(stage_cfg)
        try:
            stage.check(pipeline, stage_id)
        except ConfigError as exc:  # name the file, as every other plan error does
            if not source or exc.message.startswith(source):
                raise
            raise ConfigError(f"{source}: {exc.message}", exc.fix) from None
        steps.append(PlanStep(index, stage_id, stage, to_dict(stage_cfg), input_id))
        produced = kinds[stage_id] = cls.produces
    from paddleopt.stages.preflight import input_chain

    for step in steps:  # checks that need the resolved configs of the stages feeding this one
        step.stage.check_upstream(input_chain(steps, step.stage_id), step.stage_id)
    _check_targets(pipeline, steps, source)
    check_device(pipeline.device, source)
    work_dir = Path(pipeline.work_dir or f"work_dirs/{pipeline.name}")
    return Plan(pipeline, raw, steps, work_dir, source, source_artifact)


def _check_chain(cls: type[Stage], stage_id: str, produced: str | None, source: str) -> None:
    where = f"{source + ': ' if source else ''}stages.{stage_id}"
    if produced is None and cls.consumes and not cls.optional_input:
        raise ConfigError(
            f"{where} ({cls.name}) needs {a_an(' or '.join(cls.consumes))} artifact as input, "
            f"but it is the first stage.", f"put a stage that produces {cls.consumes[0]} before it "
            f"(e.g. train/export), or start from a model you have: source: {{model_dir: "
            f"<Paddle inference folder>}} at the top level of the config.")
    if produced is not None and produced not in cls.consumes:
        raise ConfigError(
            f"{where} ({cls.name}) consumes {' or '.join(cls.consumes) or 'nothing'}, but the "
            f"stage before it produces {produced}.",
            "reorder the stages (e.g. train -> prune -> export -> ptq -> to_onnx).")


def _check_targets(pipeline: PipelineConfig, steps: list[PlanStep], source: str) -> None:
    from paddleopt.deploy.targets import check_target_options, resolve_target

    for index, target in enumerate(pipeline.evaluate.targets):
        resolve_target(target, [(s.stage_id, type(s.stage).produces) for s in steps], source)
        check_target_options(target, index, source)


def fingerprint(step: PlanStep, parent_digest: str | None, pipeline: PipelineConfig) -> str:
    versions = stack_versions()
    config = _omit_null(step.config_dict, FINGERPRINT_OMIT_NULL.get(step.type, ()))
    return sha256_json({
        "type": step.type, "stage_id": step.stage_id, "config": config,
        # Only when set: work dirs made before `input:` existed keep their fingerprints.
        **({"input": step.input_id} if step.input_id is not None else {}),
        # model/data/seed shape every stage that trains or evaluates; include them all.
        # model.pretrained only when set: work dirs made before the key existed resume.
        "model": _omit_null(to_dict(pipeline.model), ("pretrained",)),
        "data": to_dict(pipeline.data), "seed": pipeline.seed,
        "parent": parent_digest, "versions": versions,
    })


def _omit_null(value: Any, keys: tuple[str, ...]) -> Any:
    if not keys:
        return value
    if isinstance(value, dict):
        return {k: _omit_null(v, keys) for k, v in value.items()
                if not (k in keys and v is None)}
    if isinstance(value, list):
        return [_omit_null(v, keys) for v in value]
    return value


def run(the_plan: Plan, resume: bool = False, until: str | None = None,
        evaluate: bool = True) -> RunResult:
    """Execute the plan. Stops at the first failure with the stage, its folder and the cause."""
    work_dir = the_plan.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_work_dir(work_dir)
    try:
        return _run_locked(the_plan, resume, until, evaluate)
    finally:
        lock.close()


def _lock_work_dir(work_dir: Path) -> Any:
    """One run per work dir: two runs sharing `.NN_<id>.tmp` folders corrupt each other."""
    import fcntl

    handle = open(work_dir / ".lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"another paddleopt run is using the work dir '{work_dir}'.",
                        "wait for it to finish, or set a different work_dir "
                        "(-o work_dir=...).") from None
    return handle


def _step_parent(step: PlanStep, the_plan: Plan, made: dict[str, Artifact],
                 last: Artifact | None) -> Artifact | None:
    if step.input_id == SOURCE_ID:
        return the_plan.source_artifact
    if step.input_id is not None:
        return made.get(step.input_id)
    return last


def reuse_status(the_plan: Plan) -> dict[str, str]:
    """Per stage id: "reuse" when `--resume` would skip it (its folder's fingerprint matches),
    else "run: <why>" (not made yet, or what changed since it was made)."""
    from paddleopt.stages.reuse import read_previous_config, what_changed

    previous = read_previous_config(the_plan.work_dir)
    status: dict[str, str] = {}
    made: dict[str, Artifact] = {}
    last: Artifact | None = the_plan.source_artifact
    last_id: str | None = None
    for step in the_plan.steps:
        input_id = step.input_id if step.input_id is not None else last_id
        parent = _step_parent(step, the_plan, made, last)
        final_dir = the_plan.work_dir / step.folder_name
        if input_id is not None and input_id != SOURCE_ID and input_id not in made:
            status[step.stage_id] = f"run: its input ({input_id}) runs first"
        else:
            parent_digest = parent.digest() if parent is not None else None
            fp = fingerprint(step, parent_digest, the_plan.config)
            if _finished(final_dir, fp):
                status[step.stage_id] = "reuse"
                made[step.stage_id] = Artifact.open(final_dir)
            elif not (final_dir / MANIFEST_NAME).is_file():
                status[step.stage_id] = "run: not made yet"
            else:
                status[step.stage_id] = "run: " + what_changed(
                    final_dir, step.stage_id, step.type, step.config_dict, parent_digest,
                    stack_versions(), previous, the_plan.raw)
        last, last_id = made.get(step.stage_id), step.stage_id
    return status


def _run_locked(the_plan: Plan, resume: bool, until: str | None, evaluate: bool) -> RunResult:
    from paddleopt.stages.reuse import read_previous_config

    work_dir = the_plan.work_dir
    previous = read_previous_config(work_dir)  # before it is overwritten: what changed
    dump_yaml(the_plan.raw, work_dir / "config.resolved.yaml")
    result = RunResult(the_plan)
    parent: Artifact | None = the_plan.source_artifact
    checked = False  # the deployability pre-check runs once, before the first real work
    for step in the_plan.steps:
        if step.input_id == SOURCE_ID:
            parent = the_plan.source_artifact
        elif step.input_id is not None:
            parent = result.artifacts[step.input_id]
        parent_digest = parent.digest() if parent is not None else None
        fp = fingerprint(step, parent_digest, the_plan.config)
        final_dir = work_dir / step.folder_name
        if resume and _finished(final_dir, fp):
            log.info("[%s] resume: fingerprint matches, skipping %s", step.stage_id, final_dir)
            parent = Artifact.open(final_dir)
            result.skipped.append(step.stage_id)
        else:
            _say_why_it_runs(final_dir, step, parent_digest, fp, the_plan, previous, resume)
            if not checked and role_of(step.type) != "convert":
                # Conversion stages later in the plan: learn now (seconds) whether the model's
                # ops convert, not after training/compression. Conversions check themselves.
                from paddleopt.stages.preflight import preflight

                preflight(the_plan, parent)
            checked = True
            parent = _run_step(step, parent, parent_digest, fp, the_plan, result, resume)
        result.artifacts[step.stage_id] = parent
        if until is not None and step.stage_id == until:
            break
    if evaluate and until is None:
        from paddleopt.report.evaluate import evaluate_targets
        from paddleopt.report.render import write_report

        deployments = evaluate_targets(the_plan, result.artifacts)
        result.report = write_report(work_dir, the_plan, result.artifacts, deployments)
    return result


def _say_why_it_runs(final_dir: Path, step: PlanStep, parent_digest: str | None, fp: str,
                     the_plan: Plan, previous: dict[str, Any] | None, resume: bool) -> None:
    """A finished folder about to be replaced is never replaced silently."""
    if not (final_dir / MANIFEST_NAME).is_file():
        return
    if not resume:
        log.info("[%s] replacing %s (finished stages are reused only with --resume)",
                 step.stage_id, final_dir)
        return
    try:
        lineage = Artifact.open(final_dir).manifest.lineage
    except UserError:
        return  # _finished already said why it cannot be reused
    if lineage and lineage[-1].fingerprint != fp:
        from paddleopt.stages.reuse import what_changed

        why = what_changed(final_dir, step.stage_id, step.type, step.config_dict,
                           parent_digest, stack_versions(), previous, the_plan.raw)
        log.warning("[%s] %s was made with different settings (%s): running the stage "
                    "again, the folder will be replaced", step.stage_id, final_dir, why)


def _finished(folder: Path, fp: str) -> bool:
    """The folder holds this step's finished output: same fingerprint and every file still
    matches its sha256 (a truncated or edited file makes the stage run again, with a
    message, instead of being reused forever)."""
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        art = Artifact.open(folder)
    except UserError:
        return False
    if not (art.manifest.lineage and art.manifest.lineage[-1].fingerprint == fp):
        return False
    try:
        art.verify()
    except UserError as exc:
        log.warning("resume: %s Running the stage again.", exc.message)
        return False
    return True


def _run_step(step: PlanStep, parent: Artifact | None, parent_digest: str | None, fp: str,
              the_plan: Plan, result: RunResult, resume: bool) -> Artifact:
    work_dir = the_plan.work_dir
    final_dir = work_dir / step.folder_name
    tmp_dir = work_dir / f".{step.folder_name}.tmp"
    # An interrupted attempt with the same fingerprint may hold per-epoch checkpoints the
    # stage can continue from (--resume); anything else in the temp folder is discarded.
    marker = tmp_dir / ".fingerprint"
    keep = resume and marker.is_file() and marker.read_text().strip() == fp
    if not keep:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        marker.write_text(fp)
    ctx = StageContext(pipeline=the_plan.config, stage_id=step.stage_id, work_dir=work_dir,
                       artifacts=dict(result.artifacts), resume=resume)
    log.info("[%s] %s: %s -> %s", step.stage_id, step.type,
             parent.path if parent else "-", final_dir)
    started = time.perf_counter()
    try:
        if parent is not None:  # what the stage reads is intact (cached when just verified)
            parent.verify()
        manifest = step.stage.run(parent, tmp_dir, ctx)
    except UserError as exc:
        raise StageError(f"stage '{step.stage_id}' ({step.type}) failed in {final_dir}: "
                         f"{exc.message}", exc.fix) from None
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        raise RuntimeError(f"stage '{step.stage_id}' ({step.type}) crashed while writing "
                           f"{tmp_dir}: {type(exc).__name__}: {exc}") from exc
    _finalize_manifest(manifest, step, parent_digest, fp, time.perf_counter() - started)
    marker.unlink(missing_ok=True)
    manifest.save(tmp_dir)
    if final_dir.exists():
        shutil.rmtree(final_dir)
    tmp_dir.rename(final_dir)
    return Artifact.open(final_dir)


def _finalize_manifest(manifest: Manifest, step: PlanStep, parent_digest: str | None, fp: str,
                       seconds: float) -> None:
    manifest.lineage.append(LineageEntry(
        stage=step.stage_id, type=step.type, config=step.config_dict, fingerprint=fp,
        parent_digest=parent_digest,
        finished_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")))
    manifest.versions = stack_versions()
    manifest.metrics.setdefault("stage_seconds", round(seconds, 2))


__all__ = ["Plan", "PlanStep", "RunResult", "plan", "reuse_status", "run", "stage_artifacts"]
