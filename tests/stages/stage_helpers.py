"""Run one stage directly on an existing artifact (no pipeline around it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import tiny_config
from paddleopt.artifact import Artifact
from paddleopt.config.schema import parse
from paddleopt.config.sections import PipelineConfig
from paddleopt.stages.base import StageContext
from paddleopt.stages.catalog import stage_class

# Short fine-tuning for the tiny digits model: ten updates, no progress bar.
QUICK_FT = {"epochs": 1, "max_steps_per_epoch": 10, "progress_bar": False}


def run_stage(type_name: str, config: dict[str, Any], src: Artifact | None, work: Path,
              artifacts: dict[str, Artifact] | None = None, stage_id: str | None = None,
              **pipeline: Any) -> Artifact:
    """Plan-check and run stage ``type_name`` on ``src``; return the saved artifact."""
    cls = stage_class(type_name)
    stage_id = stage_id or type_name
    raw = tiny_config(work, **pipeline)
    earlier = {sid: {} for sid in (artifacts or {})} or ({"train": {}} if src is not None
                                                        else {})
    raw["stages"] = {**earlier, stage_id: {"type": type_name, **config}}
    pipe = parse(PipelineConfig, raw)
    stage = cls(parse(cls.Config, config, path=f"stages.{stage_id}"))
    stage.check(pipe, stage_id)
    out = work / stage_id
    out.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(pipeline=pipe, stage_id=stage_id, work_dir=work,
                       artifacts=dict(artifacts or {}))
    manifest = stage.run(src, out, ctx)
    manifest.save(out)
    return Artifact.open(out)
