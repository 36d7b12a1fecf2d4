"""sparsify stage: the target sparsity is reached (and measured), the zeros survive in the
saved checkpoint and the export, and bad settings fail at plan time."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from paddleopt.stages.pipeline import plan
from paddleopt.utils.errors import ConfigError
from stage_helpers import QUICK_FT, run_stage


def test_constant_ratio_reached_and_saved(tiny_checkpoint, tmp_path):
    from paddleopt.compress.sparsity import measure_sparsity
    from paddleopt.models.loading import load_checkpoint_model

    art = run_stage("sparsify", {"ratio": 0.6, "finetune": QUICK_FT}, tiny_checkpoint, tmp_path)
    m = art.manifest.metrics
    assert abs(m["sparsity"] - 0.6) < 0.01, m
    assert art.manifest.checks["sparsity_reached"] is True
    assert m["target_sparsity"] == 0.6 and 0 < m["overall_sparsity"] < m["sparsity"]
    assert m["accuracy"] > 0.5
    # zeros compress: the saved weights shrink under zlib
    assert m["weights_zlib_bytes"] < 0.8 * m["weights_zlib_bytes_before"]
    reloaded = load_checkpoint_model(art)
    assert abs(measure_sparsity(reloaded)["sparsity"] - 0.6) < 0.01
    assert not list(reloaded.named_buffers()) or all(
        "mask" not in name for name, _ in reloaded.named_buffers())
    exported = run_stage("export", {}, art, tmp_path, stage_id="export_sparse")
    assert exported.manifest.checks["parity_paddle_inference_vs_dygraph_max_abs_diff"] < 1e-4


def test_gmp_schedule_reaches_target(tiny_checkpoint, tmp_path):
    # one epoch of the tiny digits split is 45 updates: enough for GMP's 11-step minimum
    art = run_stage("sparsify", {"ratio": 0.75, "schedule": "gmp",
                                 "gmp": {"stable": 0.1, "pruning": 0.6},
                                 "finetune": {"epochs": 1, "progress_bar": False}},
                    tiny_checkpoint, tmp_path)
    per = art.manifest.metrics["sparsity_per_param"]
    assert abs(art.manifest.metrics["sparsity"] - 0.75) < 0.01
    assert set(per) == {"features.0.weight", "features.3.weight", "fc.0.weight", "fc.2.weight"}
    assert np.mean(list(per.values())) > 0.3


@pytest.mark.parametrize("stage, match", [
    ({"ratio": 1.0}, r"ratio must be in \[0, 1\)"),
    ({"ratio": -0.1}, r"ratio must be in \[0, 1\)"),
    ({"ratio": 0.5, "schedule": "cubic"}, "'cubic' is not allowed"),
    ({"ratio": 0.5, "gmp": {"stable": 0.5, "pruning": 0.6}}, "stable \\+ pruning <= 1"),
])
def test_bad_config_fails_at_plan(tmp_path, stage, match):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "sparsify": stage}
    with pytest.raises(ConfigError, match=match):
        plan(cfg)
