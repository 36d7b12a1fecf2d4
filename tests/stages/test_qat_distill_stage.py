"""qat_distill stage: an inference model we did not make (no checkpoint, no labels) quantized
by quant-aware training against its own fp32 outputs (paddleopt's static engine, or
PaddleSlim ACT), measured beside PTQ on
held-out inputs; the result runs INT8 under oneDNN; bad recipes fail with the fix."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from paddleopt.stages.catalog import role_of
from paddleopt.utils.errors import ConfigError, UserError
from stage_helpers import run_stage

QUICK_LATENCY = {"batch_size": 8, "iters": 5, "warmup": 1, "max_seconds": 0.3, "rounds": 1}


def _foreign(tiny_inference, tmp_path):
    """A bare copy of the tiny export (no manifest) and digits inputs in an .npz."""
    from paddleopt.data.datasets import load_digits

    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.pdmodel", "model.pdiparams"):
        shutil.copy2(tiny_inference.path / name, folder / name)
    x = load_digits().train.images[:200].astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x=x)
    return folder, tmp_path / "inputs.npz"


def _config(folder, npz, **over):
    return {"model_dir": str(folder), "latency": QUICK_LATENCY,
            "calibration": {"source": "npz", "path": str(npz), "count": 64, "batch_size": 16},
            "evaluation": {"source": "agreement", "count": 100},
            "max_accuracy_drop": 0.5, "distill": {"steps": 12, "learning_rate": 1e-4}, **over}


def test_catalogue_row() -> None:
    assert role_of("qat_distill") == "quantize"


def test_qat_distill_beside_ptq_on_a_foreign_model(tiny_inference, tmp_path):
    folder, npz = _foreign(tiny_inference, tmp_path)
    art = run_stage("qat_distill", _config(folder, npz, keep_candidates=True), None,
                    tmp_path / "work")
    record = json.loads((tmp_path / "work" / "qat_distill" / "candidates.json").read_text())
    rows = {r["name"]: r for r in record["candidates"]}
    assert set(rows) == {"hist", "qat_distill"}
    qd = rows["qat_distill"]
    # measured like every candidate: fp32 agreement on held-out inputs (after the 64
    # calibration samples), paired latency, trained for the steps asked
    assert qd["agreement"]["samples"] == 100 and qd["agreement"]["metric"] == "top1_agreement"
    assert qd["accuracy"] >= 0.8 and qd["quantized_compute_ops"] > 0
    assert qd["speedup_vs_fp32"] > 0 and qd["train_seconds"] > 0
    chosen = [r for r in record["candidates"] if r.get("chosen")]
    assert len(chosen) == 1
    assert art.manifest.precision == "int8"
    assert art.manifest.checks["int8"]["int8_kernels"] > 0  # oneDNN ran INT8 kernels
    assert (tmp_path / "work" / "qat_distill" / "candidates.png").is_file()
    # every kept candidate folder is a self-describing artifact (its own manifest.json)
    from paddleopt.artifact import Artifact

    for row in record["candidates"]:
        cand = Artifact.open(tmp_path / "work" / "qat_distill" / row["folder"])
        assert cand.manifest.precision == "int8"
        assert cand.manifest.metrics["candidate"] == row["name"]
        assert cand.manifest.metrics["accuracy"] == row["accuracy"]
        assert cand.manifest.quantization["method"] in ("ptq", "qat_distill")


def test_only_qat_distill_records_its_recipe(tiny_inference, tmp_path):
    folder, npz = _foreign(tiny_inference, tmp_path)
    art = run_stage("qat_distill", _config(folder, npz, candidates=[{"qat_distill": True}]),
                    None, tmp_path / "work")
    quant = art.manifest.quantization
    assert quant["method"] == "qat_distill" and quant["steps"] == 12
    assert quant["engine"].startswith("paddleopt static")
    assert quant["last_loss"] < quant["first_loss"]  # it learnt
    assert quant["quantized_compute_ops"] > 0 and quant["onnx_format"] is True
    assert art.manifest.checks["int8"]["int8_kernels"] > 0  # its own kernels, under oneDNN


def test_unknown_distill_node_names_the_fix(tiny_inference, tmp_path):
    from paddleopt.compress.act import act_compress
    from paddleopt.compress.recipe import DistillSettings

    folder, npz = _foreign(tiny_inference, tmp_path)
    with pytest.raises(UserError, match="not tensors of"):
        act_compress(folder, tmp_path / "out", npz, train=DistillSettings(steps=1, nodes=["nope"]),
                     batch_size=8, batch_nums=1)


@pytest.mark.parametrize("bad, match", [
    ({"distill": {"steps": 0}}, "steps >= 1"),
    ({"candidates": [{"qat_distill": True, "algo": "mse"}]}, "takes no algo"),
])
def test_bad_recipe_is_a_config_error(tiny_inference, tmp_path, bad, match):
    folder, npz = _foreign(tiny_inference, tmp_path)
    with pytest.raises(ConfigError, match=match):
        run_stage("qat_distill", _config(folder, npz, **bad), None, tmp_path / "work")


@pytest.mark.slow  # a CLI subprocess: ~30 s idle, minutes under load
def test_quantize_cli_distill_adds_the_candidate(tiny_inference, tmp_path):
    from conftest import run_cli

    folder, npz = _foreign(tiny_inference, tmp_path)
    proc = run_cli("quantize", str(folder), "--calib", str(npz), "--distill", "8",
                   "--max-drop", "0.5", "--work-dir", str(tmp_path / "q"),
                   "--json", str(tmp_path / "q.json"), "-o", "ptq.candidates=[{algo: hist}, "
                   "{qat_distill: true}]", "-o", "ptq.latency.rounds=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {c["name"]: c for c in json.loads((tmp_path / "q.json").read_text())["candidates"]}
    assert rows["qat_distill"]["status"] in ("fits", "kept")  # measured, not skipped
    assert rows["qat_distill"]["accuracy"] >= 0.8


def test_diverged_distillation_is_refused(tiny_inference, tmp_path):
    from paddleopt.compress.act import act_compress
    from paddleopt.compress.recipe import DistillSettings

    folder, npz = _foreign(tiny_inference, tmp_path)
    with pytest.raises(UserError, match="diverged"):
        act_compress(folder, tmp_path / "out", npz, batch_size=16, batch_nums=4,
                     train=DistillSettings(steps=8, learning_rate=1e12))


def test_act_engine_still_available(tiny_inference, tmp_path):
    folder, npz = _foreign(tiny_inference, tmp_path)
    cfg = _config(folder, npz, candidates=[{"qat_distill": True}],
                  distill={"steps": 4, "engine": "act"})
    art = run_stage("qat_distill", cfg, None, tmp_path / "work")
    assert art.manifest.quantization["engine"].startswith("paddleslim")
    assert art.manifest.checks["int8"]["int8_kernels"] > 0


def test_one_recipe_type_one_default():
    """The qat_distill candidate and the library share DistillSettings (and its defaults)."""
    import dataclasses

    from paddleopt.compress.recipe import DistillSettings
    from paddleopt.stages._ptq.config import PTQConfig

    hints = {f.name: f.type for f in dataclasses.fields(PTQConfig)}
    assert "DistillSettings" in str(hints["distill"])
    assert DistillSettings().steps == 300
