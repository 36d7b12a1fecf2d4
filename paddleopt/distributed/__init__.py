"""Distributed training: the ``fleet:`` config, the launcher wrapper and the in-rank runtime.

``paddleopt train -c CONFIG --nproc 2`` sets ``fleet.nproc`` on the planned train stage
(``distribute``); that stage (and any stage that fine-tunes through ``engine.loop.fit``) then
runs under ``python -m paddle.distributed.launch`` while the rest of the pipeline stays in one
process. See docs/DISTRIBUTED.md. Importing this package imports no paddle.
"""
from paddleopt.distributed.config import FleetConfig, HybridConfig, RecomputeConfig
from paddleopt.distributed.launch import (WorkerNodeFinished, distribute, launch_command,
                                          launch_stage, needs_launch)

__all__ = ["FleetConfig", "HybridConfig", "RecomputeConfig", "WorkerNodeFinished",
           "distribute", "launch_command", "launch_stage", "needs_launch"]
