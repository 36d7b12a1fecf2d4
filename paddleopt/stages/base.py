"""The stage contract: a typed config, the kinds consumed and produced, and ``run``."""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, Manifest
    from paddleopt.config.sections import PipelineConfig
    from paddleopt.stages.pipeline import PlanStep


@dataclass
class StageContext:
    """What a running stage may use besides its own config and input artifact."""

    pipeline: PipelineConfig  # the whole resolved config (model, data, seed, ...)
    stage_id: str
    work_dir: Path
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # earlier outputs by stage id
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("paddleopt"))
    resume: bool = False

    @property
    def seed(self) -> int:
        return self.pipeline.seed


class Stage(ABC):
    """Turns an artifact (or nothing, for ``train``) into a new artifact.

    Subclasses set ``name`` (the catalogue key, YAML ``type`` and CLI word), ``Config`` (a
    dataclass; unknown keys are rejected), ``consumes`` (accepted input kinds; empty when the
    stage starts from nothing), ``produces`` and ``extras``. Heavy imports go inside ``run``.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    consumes: ClassVar[tuple[str, ...]] = ()
    optional_input: ClassVar[bool] = False  # True: may run with or without an input artifact
    produces: ClassVar[str]
    extras: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any) -> None:
        self.config = config

    def check(self, pipeline: PipelineConfig, stage_id: str) -> None:
        """Plan-time validation beyond the schema (files exist, ranges). Raise ConfigError."""

    def check_upstream(self, upstream: list[PlanStep], stage_id: str) -> None:
        """Plan-time validation against the planned stages whose output this one consumes
        (nearest first, typed configs; see ``paddleopt.stages.preflight.input_chain``)."""

    def deploy_target(self) -> str | None:
        """The deployment target a convert-role stage writes for (onnx, arm, x86, opencl):
        the plan pre-checks the model's ops for it before any training. None otherwise."""
        return None

    @abstractmethod
    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        """Write the new artifact's files into ``out_dir`` and return its manifest.

        The pipeline saves the manifest (adding lineage, versions and file digests) and moves
        ``out_dir`` into place only after ``run`` returns.
        """
