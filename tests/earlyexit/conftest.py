"""A tiny trained resnet_small (digits) and its early-exit artifact, built once per session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))

TINY_RESNET = {"arch": "resnet_small", "num_classes": 10, "in_channels": 1,
               "kwargs": {"depths": [1, 1, 1], "widths": [8, 16, 16]}}
QUICK_FT = {"epochs": 2, "progress_bar": False}


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory: pytest.TempPathFactory):
    """A resnet_small trained on digits (3 quick epochs): its checkpoint artifact."""
    from conftest import tiny_config
    from paddleopt import api

    config = tiny_config(tmp_path_factory.mktemp("tiny_resnet"), model=dict(TINY_RESNET))
    config["stages"] = {"train": {"epochs": 3, "optimizer": {"name": "adam", "lr": 0.01},
                                  "progress_bar": False}}
    config["evaluate"]["targets"] = [{"name": "eager", "backend": "eager"}]
    return api.run(config, evaluate=False).artifacts["train"]


@pytest.fixture(scope="session")
def tiny_early_exit(tiny_resnet, tmp_path_factory: pytest.TempPathFactory):
    """The early_exit stage on it: one exit after blocks.0, FLOPs cost, ONNX segments too."""
    from stage_helpers import run_stage

    work = tmp_path_factory.mktemp("tiny_early_exit")
    return run_stage("early_exit", {"exits": ["blocks.0"], "finetune": QUICK_FT,
                                    "cost": "flops", "formats": ["onnx"], "max_drop": 2.0,
                                    "calibration_samples": 300},
                     tiny_resnet, work, model=dict(TINY_RESNET))
