"""Plan-level checks that need the whole plan: which stage feeds which (``input_chain``), and
the deployability pre-check of the conversion stages' targets before any training.

The op-level check itself (an artifact or program against a target) is
``paddleopt.deploy.check``; this module decides what to check and when.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from paddleopt.deploy.check import (TARGETS, CheckResult, check_artifact, check_program,
                                    normalize_target, untrained_program)
from paddleopt.stages.catalog import role_of
from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact
    from paddleopt.stages.pipeline import Plan, PlanStep

log = logging.getLogger("paddleopt")


def input_chain(steps: list[PlanStep], stage_id: str) -> list[PlanStep]:
    """The planned steps whose output ``stage_id`` consumes, nearest first, following
    ``input:`` (the plan's resolved chain: typed configs, defaults filled in)."""
    by_id = {s.stage_id: s for s in steps}
    order = [s.stage_id for s in steps]
    chain: list[PlanStep] = []
    current = stage_id
    while current in by_id and len(chain) < len(steps):
        step = by_id[current]
        position = order.index(current)
        parent = step.input_id or (order[position - 1] if position > 0 else None)
        if parent is None or parent not in by_id:
            break
        chain.append(by_id[parent])
        current = parent
    return chain


def quantized_by(steps: list[PlanStep], stage_id: str) -> PlanStep | None:
    """The quantize-role stage (ptq, qat) upstream of ``stage_id``, if any."""
    return next((s for s in input_chain(steps, stage_id) if role_of(s.type) == "quantize"),
                None)


def plan_targets(plan: Plan) -> list[tuple[str, str]]:
    """(stage id, deployment target) of every conversion stage in a plan, in order."""
    out = []
    for step in plan.steps:
        target = step.stage.deploy_target()
        if target is not None:
            out.append((step.stage_id, target))
    return out


def _config_input_specs(pipeline: Any) -> list[Any]:
    """The model's inputs as the train stage will record them, without loading the data
    (image datasets) or from the data bundle (text)."""
    from paddleopt.artifact import TensorSpec
    from paddleopt.data.text_datasets import is_text_data

    data = pipeline.data
    if is_text_data(data.dataset, data.preprocess):
        from paddleopt.data.loaders import build_data

        return build_data(data, pipeline.seed).input_specs()
    from paddleopt.data.preprocess import image_preprocess

    pre = image_preprocess(data.dataset, data.preprocess)
    return [TensorSpec("x", [-1, pre.channels, *pre.size])]


def check_plan(plan: Plan, targets: list[str] | None = None,
               parent: Artifact | None = None) -> list[CheckResult]:
    """Check the pipeline's model for ``targets`` (default: its conversion stages' targets,
    or every target when it has none).

    The program checked is ``parent``'s when that is an inference artifact; otherwise the
    model is built untrained from ``parent``'s (checkpoint) spec or the config's ``model``
    section. Precision-specific blockers (int8 on x86, fake-quant ops for ONNX) are caught at
    plan time and by each stage's own check on the real artifact.
    """
    from paddleopt.models.registry import model_spec

    wanted = [normalize_target(t) for t in targets] if targets else \
        list(dict.fromkeys(t for _, t in plan_targets(plan))) or list(TARGETS)
    parent = parent if parent is not None else getattr(plan, "source_artifact", None)
    if parent is not None and parent.kind == "inference":
        return [check_artifact(parent, t) for t in wanted]
    if parent is not None and parent.kind == "checkpoint":
        spec, inputs = parent.manifest.model, parent.manifest.io.inputs
    else:
        spec, inputs = model_spec(plan.config.model), _config_input_specs(plan.config)
    clip = next((getattr(s.stage.config, "clip_extra", True) for s in plan.steps
                 if role_of(s.type) == "export"), True)
    program = untrained_program(spec, inputs, clip_extra=clip)
    lod = [s.name for s in inputs if getattr(s, "lod_level", 0) > 0]
    return [check_program(program, t, lod_inputs=lod) for t in wanted]


def preflight(plan: Plan, parent: Artifact | None) -> list[CheckResult]:
    """Run by the pipeline before the first stage that does work when conversion stages come
    later: a model a target cannot take fails now, not after training and compression.

    Raises:
        UserError: naming the conversion stage that would fail, the ops and the fix.
    """
    stages = plan_targets(plan)
    if not stages:
        return []
    if parent is not None and (parent.kind not in ("checkpoint", "inference")
                               or parent.manifest.precision != "fp32"):
        return []  # after quantization only conversions follow; each checks its real input
    try:
        results = check_plan(plan, [t for _, t in stages], parent)
    except Exception as exc:  # noqa: BLE001 - advisory: the conversion stages check anyway
        log.warning("pre-check skipped: could not build the model's program to check "
                    "(%s: %s); each conversion stage still checks its real input.",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return []
    by_target = {r.target: r for r in results}
    for stage_id, target in stages:
        result = by_target[normalize_target(target)]
        if not result.supported:
            raise UserError(
                f"pre-check: stage '{stage_id}' cannot convert this model for {target}: "
                f"{result.reason()}. (Checked on the model's program before any stage ran, "
                f"so no training or compression time was spent.)",
                f"{result.fix} Repeat the check with `paddleopt check -c CONFIG`.")
    log.info("pre-check: the model's %d op types convert for %s", len(results[0].ops),
             ", ".join(sorted(by_target)))
    return results
