"""Compression stages that fine-tune run under the launcher like `train` (2 CPU ranks, gloo).

Equality contract (see test_launch.py): with no shuffling, 2 ranks x batch 16 read exactly
the samples of one process x batch 16 x 2 accumulated micro-batches, and DataParallel's
averaged gradient equals the accumulated one, so a distributed prune fine-tuning must give
the weights of the one-process run. Pruning itself (L1 norm, uniform spread) is
deterministic, so both start from the same pruned LeNet (no BatchNorm: no per-rank
statistics). Tolerance 1e-5 absolute on every weight.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from paddleopt import api
from paddleopt.utils.errors import ConfigError
from paddleopt.utils.imports import import_paddle

TOLERANCE = 1e-5


def _finetune(**fleet):
    return {"epochs": 1, "optimizer": {"name": "momentum", "lr": 0.05},
            "schedule": {"name": "constant"}, "progress_bar": False, "fleet": fleet}


def _config(work_dir, stages):
    config = tiny_config(work_dir)
    config["data"].update(batch_size=16, shuffle=False, train_subset=256, eval_subset=64)
    config["stages"] = {"train": {"epochs": 1, "optimizer": {"name": "adam", "lr": 0.01},
                                  "progress_bar": False}, **stages}
    config["evaluate"] = {"targets": []}
    return config


def _weights(art):
    state = import_paddle().load(str(art.file("weights")))
    return {k: v.numpy() for k, v in state.items()}


def test_distributed_prune_matches_one_process(tmp_path):
    prune = {"type": "prune", "input": "train", "flops_reduction": 0.3, "spread": "uniform"}
    result = api.run(_config(tmp_path, {
        "prune_one": {**prune, "finetune": _finetune(accumulate_steps=2)},
        "prune_two": {**prune, "finetune": _finetune(nproc=2)}}), evaluate=False)
    one, two = result.artifacts["prune_one"], result.artifacts["prune_two"]
    a, b = _weights(one), _weights(two)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < TOLERANCE
    assert two.manifest.metrics["flops_after"] < two.manifest.metrics["flops_before"]
    info = two.manifest.metrics["distributed"]
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    assert all(r["train_samples"] == 128 for r in info["ranks"])  # each rank read its shard
    assert "distributed" not in one.manifest.metrics
    # only rank 0 wrote into the artifact folder; both ranks logged
    assert sorted(p.name for p in two.path.iterdir()) == sorted(p.name for p in one.path.iterdir())
    assert (tmp_path / "logs" / "prune_two" / "workerlog.1").is_file()


def test_distill_sparsify_qat_run_on_two_ranks(tmp_path, cli):
    """The same stages through `paddleopt compress --nproc 2` (the CLI sets
    finetune.fleet.nproc on every compression stage that fine-tunes)."""
    import yaml

    config = _config(tmp_path / "work", {
        "student": {"type": "distill", "input": "train", "alpha": 0.7, "temperature": 2.0,
                    "student": {"arch": "lenet", "num_classes": 10, "in_channels": 1,
                                "width_mult": 0.5},
                    "finetune": {**_finetune(), "epochs": 2,
                                 "optimizer": {"name": "adam", "lr": 0.01}}},
        "sparse": {"type": "sparsify", "input": "train", "ratio": 0.5, "finetune": _finetune()},
        "qat": {"input": "train", "finetune": _finetune()}})
    config["stages"]["train"]["epochs"] = 2
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # stage order matters
    proc = cli("compress", "-c", str(path), "--nproc", "2", timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    work = tmp_path / "work"
    arts = {p.name.split("_", 1)[1]: api.open_artifact(p) for p in work.iterdir()
            if (p / "manifest.json").is_file()}
    assert "distributed" not in arts["train"].manifest.metrics  # compress: not the train stage
    for stage in ("student", "sparse", "qat"):
        info = arts[stage].manifest.metrics["distributed"]
        assert info["world_size"] == 2 and [r["rank"] for r in info["ranks"]] == [0, 1], stage
    assert arts["student"].manifest.metrics["accuracy"] > 0.4  # 10 classes: chance is 0.1
    assert arts["sparse"].manifest.checks["sparsity_reached"]
    qat = arts["qat"].manifest
    assert qat.precision == "int8" and qat.metrics["accuracy"] > 0.5


def test_feature_distillation_stays_in_one_process(tmp_path):
    config = _config(tmp_path, {"student": {
        "type": "distill", "input": "train", "feature_pairs": {"features": "features"},
        "student": {"arch": "lenet", "num_classes": 10, "in_channels": 1, "width_mult": 0.5},
        "finetune": _finetune(nproc=2)}})
    with pytest.raises(ConfigError, match="feature distillation"):
        api.plan(config)
