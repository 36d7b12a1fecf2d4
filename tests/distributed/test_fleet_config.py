"""The fleet config, plan-time checks, launcher command line and in-process accumulation /
recompute (no launcher here: these run in one process, in seconds)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from paddleopt import api
from paddleopt.config.schema import parse
from paddleopt.distributed.config import FleetConfig
from paddleopt.distributed.launch import (WORKER_SCRIPT, check_not_externally_launched,
                                          launch_command, parse_ips)
from paddleopt.distributed.runtime import strategy_dict
from paddleopt.utils.errors import ConfigError, UserError


def train_only(work_dir, batch=32, **fleet):
    config = tiny_config(work_dir)
    config["data"].update(batch_size=batch, shuffle=False, train_subset=256, eval_subset=64)
    config["stages"] = {"train": {"epochs": 1, "optimizer": {"name": "momentum", "lr": 0.05},
                                  "schedule": {"name": "constant"}, "progress_bar": False,
                                  "fleet": fleet}}
    config["evaluate"] = {"targets": []}
    return config


@pytest.mark.parametrize("fleet, words", [
    ({"nproc": 0}, "nproc must be >= 1"),
    ({"accumulate_steps": 0}, "accumulate_steps"),
    ({"ips": ["10.0.0.1", "10.0.0.1"]}, "twice"),
    ({"ips": ["127.0.0.1", "10.0.0.2"]}, "127.0.0.1"),
    ({"nproc": 2, "hybrid": {"dp_degree": 3}}, "multiply to 3"),
    ({"recompute": {"enabled": True}}, "recompute"),
    ({"nprocs": 2}, "did you mean"),
])
def test_bad_fleet_config_fails_at_plan_time(tmp_path, fleet, words):
    with pytest.raises(ConfigError) as err:
        api.plan(train_only(tmp_path, **fleet))
    assert words in str(err.value)


@pytest.mark.parametrize("fleet, words", [
    ({"nproc": 2, "hybrid": {"sharding_degree": 2}}, "GPU-only"),
    ({"backend": "nccl"}, "nccl needs GPUs"),
    ({"devices": "0,1"}, "selects GPUs"),
])
def test_gpu_only_options_refused_on_cpu(tmp_path, fleet, words):
    with pytest.raises(ConfigError) as err:
        api.plan(train_only(tmp_path, **fleet))
    assert words in str(err.value)


def test_model_parallel_needs_fleet_model(tmp_path):
    config = train_only(tmp_path, nproc=2, hybrid={"mp_degree": 2})
    config["device"] = "gpu"
    with pytest.raises(ConfigError, match="meta-parallel"):
        api.plan(config)


def test_launch_command_cpu_single_node(tmp_path):
    cfg = parse(FleetConfig, {"nproc": 2})
    cmd, env = launch_command(cfg, tmp_path, ["spec.json"], device="cpu", python="py")
    assert cmd[:6] == ["py", "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                       "--log_dir"]
    assert cmd[-2:] == [str(WORKER_SCRIPT), "spec.json"] and "--ips" not in cmd
    assert env["PADDLE_DISTRI_BACKEND"] == "gloo" and env["PADDLEOPT_DIST_WORKER"] == "1"
    assert "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION" not in env


def test_launch_command_multi_node_gpu_fleet(tmp_path):
    cfg = parse(FleetConfig, {"nproc": 4, "ips": ["10.0.0.1", "10.0.0.2"], "devices": "0,1,2,3",
                              "start_port": 7000, "use_fleet": True})
    cmd, env = launch_command(cfg, tmp_path, [], device="gpu")
    joined = " ".join(cmd)
    assert "--ips 10.0.0.1,10.0.0.2 --start_port 7000" in joined
    assert "--devices 0,1,2,3" in joined
    assert env["PADDLE_DISTRI_BACKEND"] == "nccl"
    assert env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] == "python"
    assert cfg.world_size == 8


def test_strategy_dict_passes_degrees_amp_recompute():
    cfg = parse(FleetConfig, {"nproc": 4, "accumulate_steps": 2,
                              "hybrid": {"dp_degree": 2, "sharding_degree": 2},
                              "recompute": {"enabled": True, "layers": ["features"]}})

    class Amp:
        enabled, init_loss_scaling, level = True, 512.0, "O1"

    out = strategy_dict(cfg, Amp())
    assert out["hybrid_configs"] == {"dp_degree": 2, "mp_degree": 1, "pp_degree": 1,
                                     "sharding_degree": 2}
    assert out["amp"] and out["amp_configs"]["init_loss_scaling"] == 512.0
    assert out["recompute_configs"] == {"checkpoints": ["features"]}
    assert out["gradient_merge_configs"]["k_steps"] == 2


def test_distribute_equals_writing_fleet_in_the_config(tmp_path):
    """--nproc/--ips set the typed plan directly; the result is the plan the same values
    written in the YAML give (config, resolved dict for the fingerprint, raw config)."""
    from paddleopt.config.schema import to_dict
    from paddleopt.stages.pipeline import fingerprint

    config = tiny_config(tmp_path)
    ips = ["10.0.0.1", "10.0.0.2"]
    typed = api.plan(config, nproc=2, ips=ips)
    written = api.plan(config, ["stages.train.fleet.nproc=2",
                                'stages.train.fleet.ips=["10.0.0.1", "10.0.0.2"]'])
    assert typed.steps[0].stage.config.fleet.world_size == 4
    assert typed.steps[0].config_dict == written.steps[0].config_dict
    assert typed.raw == written.raw and to_dict(typed.config) == to_dict(written.config)
    assert fingerprint(typed.steps[0], None, typed.config) == \
        fingerprint(written.steps[0], None, written.config)
    assert api.plan(config).steps[0].stage.config.fleet.nproc == 1  # config not mutated
    assert api.plan(config, nproc=3).steps[0].stage.config.fleet.nproc == 3
    with pytest.raises(UserError, match="no export stage"):
        api.plan(config, nproc=2, stage_types=("export",))
    with pytest.raises(ConfigError, match="stages.train.fleet"):
        api.plan(config, ips=["10.0.0.1", "10.0.0.1"])
    assert parse_ips(" 10.0.0.1, 10.0.0.2 ,") == ["10.0.0.1", "10.0.0.2"]


def test_refuses_to_run_inside_an_outside_launcher(monkeypatch):
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    monkeypatch.delenv("PADDLEOPT_DIST_WORKER", raising=False)
    with pytest.raises(UserError, match="--nproc"):
        check_not_externally_launched()


def _weights(result):
    from paddleopt.utils.imports import import_paddle

    state = import_paddle().load(str(result.artifacts["train"].file("weights")))
    return {k: v.numpy() for k, v in state.items()}


def test_accumulation_equals_the_big_batch(tmp_path):
    """16 x 2 accumulated micro-batches == one batch of 32 (same samples, same order)."""
    big = _weights(api.run(train_only(tmp_path / "big", batch=32), evaluate=False))
    acc = _weights(api.run(train_only(tmp_path / "acc", batch=16, accumulate_steps=2),
                           evaluate=False))
    small = _weights(api.run(train_only(tmp_path / "small", batch=16), evaluate=False))
    diff = max(float(np.abs(big[k] - acc[k]).max()) for k in big)
    assert diff < 1e-5, diff
    # and the comparison can tell: batch 16 without accumulation trains differently
    assert max(float(np.abs(big[k] - small[k]).max()) for k in big) > 1e-3


def test_recompute_gives_the_same_weights(tmp_path):
    base = _weights(api.run(train_only(tmp_path / "base"), evaluate=False))
    rec = _weights(api.run(train_only(tmp_path / "rec", recompute={
        "enabled": True, "layers": ["features", "fc"]}), evaluate=False))
    assert max(float(np.abs(base[k] - rec[k]).max()) for k in base) < 1e-6


def test_recompute_unknown_layer_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no sublayer named"):
        api.run(train_only(tmp_path, recompute={"enabled": True, "layers": ["nope"]}),
                evaluate=False)
