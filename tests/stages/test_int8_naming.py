"""ptq and qat can name their INT8 model inference.pdmodel/.pdiparams and write the
PaddleClas-style inference.yml, like export: the folder drops into PaddleClas deploy /
FastDeploy, and its bare files (no manifest) still run INT8 with the right preprocessing."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from paddleopt.artifact import Artifact
from paddleopt.utils.errors import ConfigError
from stage_helpers import QUICK_FT, run_stage

QUICK_LATENCY = {"batch_size": 8, "iters": 5, "warmup": 1, "max_seconds": 0.3, "rounds": 1}
NAMED = {"file_prefix": "inference", "preprocess_file": True}
FILES = {"model": "inference.pdmodel", "params": "inference.pdiparams",
         "preprocess": "inference.yml"}


def _bare_copy_runs_like(art: Artifact, tmp_path) -> None:
    from paddleopt.deploy.predictor import load_predictor

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in FILES.values():  # what a user copies into PaddleClas deploy: no manifest
        shutil.copy2(art.path / name, bare / name)
    wrapped = Artifact.open(bare)
    assert wrapped.manifest.precision == "int8"
    assert wrapped.manifest.preprocess["size"] == art.manifest.preprocess["size"]
    assert wrapped.manifest.labels == art.manifest.labels
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    ours = load_predictor(art, "paddle_inference", {"threads": 1}).run([x])[0]
    theirs = load_predictor(wrapped, "paddle_inference", {"threads": 1}).run([x])[0]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_ptq_writes_inference_files(tiny_inference, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(1).random((32, 1, 8, 8), dtype=np.float32))
    art = run_stage("ptq", {**NAMED, "calibration": {"source": "npz", "path": str(calib),
                                                     "batch_size": 16, "count": 32},
                            "evaluation": {"source": "none"}, "latency": QUICK_LATENCY},
                    tiny_inference, tmp_path / "ptq")
    assert {k: v for k, v in art.manifest.files.items() if k in FILES} == FILES
    assert not (art.path / "model.pdmodel").exists()
    assert art.manifest.checks["int8"]["int8_kernels"] >= 1  # verified before the rename
    _bare_copy_runs_like(art, tmp_path)


def test_qat_writes_inference_files(tiny_checkpoint, tmp_path):
    art = run_stage("qat", {**NAMED, "finetune": QUICK_FT}, tiny_checkpoint, tmp_path / "qat")
    assert {k: v for k, v in art.manifest.files.items() if k in FILES} == FILES
    _bare_copy_runs_like(art, tmp_path)


def test_file_prefix_must_be_a_stem(tmp_path, tiny_inference):
    with pytest.raises(ConfigError, match="ptq.file_prefix must be a plain file stem"):
        run_stage("ptq", {"file_prefix": "a/b"}, tiny_inference, tmp_path)
