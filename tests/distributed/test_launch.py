"""Real launches: 2 CPU processes (gloo) through `python -m paddle.distributed.launch`.

The equality contract: with no shuffling, rank r of 2 reads samples [2Bk + rB, 2Bk + (r+1)B)
at step k (DistributedBatchSampler), so the two ranks together see exactly the single-process
batch k of 2B. DataParallel averages the ranks' mean-loss gradients, which is the gradient of
the mean loss over 2B: the weights must match a 1-process run with batch 2B. LeNet has no
BatchNorm (whose running statistics would be per rank); train_subset (256) is a multiple of
the global batch, so no rank gets padded samples. Tolerance: 1e-5 absolute on every weight
(measured: ~1.2e-7, float32 summation order of the all-reduce).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from distributed.test_fleet_config import _weights, train_only
from paddleopt import api
from paddleopt.utils.errors import UserError

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """1 process, global batch 32."""
    return _weights(api.run(train_only(tmp_path_factory.mktemp("single"), batch=32),
                            evaluate=False))


def _max_diff(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_two_processes_cli_match_one_process(tmp_path, single, cli):
    """`paddleopt train -c ... --nproc 2`: 2 ranks x batch 16 == 1 process x batch 32."""
    cfg = tmp_path / "dist.yaml"
    cfg.write_text(yaml.safe_dump(train_only(tmp_path / "work", batch=16)))
    proc = cli("train", "-c", str(cfg), "--nproc", "2", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    art = api.open_artifact(tmp_path / "work" / "01_train")
    from paddleopt.utils.imports import import_paddle

    dist = {k: v.numpy() for k, v in import_paddle().load(str(art.file("weights"))).items()}
    assert _max_diff(single, dist) < TOLERANCE
    info = art.manifest.metrics["distributed"]
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    assert info["runtime"] == "data_parallel"
    assert [r["rank"] for r in info["ranks"]] == [0, 1]
    assert all(r["train_samples"] == 128 for r in info["ranks"])  # each rank read its shard
    log_dir = tmp_path / "work" / "logs" / "train"
    assert (log_dir / "workerlog.0").is_file() and (log_dir / "workerlog.1").is_file()
    # only rank 0 wrote: one weights file, one checkpoint set, lineage recorded by the parent
    assert art.manifest.lineage[-1].config["fleet"]["nproc"] == 2
    # the resolved config used by the ranks is kept next to their logs
    assert json.loads((log_dir / "launch.json").read_text())["stage_id"] == "train"


def test_fleet_runtime_with_accumulation_matches(tmp_path, single):
    """fleet.init + distributed_model/optimizer (use_fleet), 2 ranks x batch 8 x 2 accumulated
    micro-batches == 1 process x batch 32."""
    result = api.run(train_only(tmp_path, batch=8, accumulate_steps=2, use_fleet=True),
                     evaluate=False, nproc=2)
    assert _max_diff(single, _weights(result)) < TOLERANCE
    info = result.artifacts["train"].manifest.metrics["distributed"]
    assert info["runtime"] == "fleet" and info["accumulate_steps"] == 2


def test_a_rank_error_comes_back_as_the_stage_error(tmp_path):
    config = train_only(tmp_path, nproc=2, recompute={"enabled": True, "layers": ["nope"]})
    with pytest.raises(UserError) as err:
        api.run(config, evaluate=False)
    text = str(err.value)
    assert "no sublayer named ['nope']" in text and "rank 0" in text and "logs" in text
    assert not (tmp_path / "01_train").exists()  # no half artifact
