"""prune_distill stage: channel pruning of an inference model we did not make (no checkpoint,
no labels), per-conv ratios from a sensitivity analysis, recovered by distillation from its
own fp32 outputs (compress.static_distill). FLOPs fall to the target, the result runs."""
from __future__ import annotations

import json

import pytest

from paddleopt.stages.catalog import role_of
from paddleopt.utils.errors import ConfigError
from stage_helpers import run_stage
from test_qat_distill_stage import QUICK_LATENCY


@pytest.fixture(scope="module")
def _conv_net(tmp_path_factory):
    """A bare inference folder (no manifest) of a small trained-ish CNN with prunable convs
    (conv-bn-relu x3, global pool, fc) on 8x8 digits, and its inputs in an .npz."""
    import numpy as np
    import paddle

    from paddleopt.data.datasets import load_digits
    from paddleopt.utils.jit import save_layer

    root = tmp_path_factory.mktemp("prune_distill")
    paddle.seed(0)
    nn = paddle.nn
    net = nn.Sequential(
        nn.Conv2D(1, 16, 3, padding=1), nn.BatchNorm2D(16), nn.ReLU(),
        nn.Conv2D(16, 32, 3, padding=1), nn.BatchNorm2D(32), nn.ReLU(),
        nn.Conv2D(32, 32, 3, padding=1), nn.BatchNorm2D(32), nn.ReLU(),
        nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(32, 10))
    digits = load_digits().train
    x = digits.images[:256].astype(np.float32).reshape(-1, 1, 8, 8)
    opt = paddle.optimizer.Adam(1e-2, parameters=net.parameters())
    for _ in range(30):  # a few real steps: outputs that mean something
        loss = nn.functional.cross_entropy(net(paddle.to_tensor(x)),
                                           paddle.to_tensor(digits.labels[:256].astype("int64")))
        loss.backward()
        opt.step()
        opt.clear_grad()
    net.eval()
    save_layer(net, str(root / "model" / "model"),
               input_spec=[paddle.static.InputSpec([-1, 1, 8, 8], "float32", "x")])
    np.savez(root / "inputs.npz", x=x)
    return root / "model", root / "inputs.npz"


def _config(folder, npz, **over):
    return {"model_dir": str(folder), "latency": QUICK_LATENCY,
            "calibration": {"source": "npz", "path": str(npz), "count": 64, "batch_size": 16},
            "evaluation": {"source": "agreement", "count": 100},
            "flops_reduction": 0.3, "sensitivity_samples": 64,
            "distill": {"steps": 30, "learning_rate": 1e-3}, **over}


def test_catalogue_row() -> None:
    assert role_of("prune_distill") == "compress"


def test_prunes_a_foreign_model_to_the_flops_target(_conv_net, tmp_path):
    folder, npz = _conv_net
    art = run_stage("prune_distill", _config(folder, npz), None, tmp_path / "work")
    m = art.manifest.metrics
    assert m["flops_after"] <= 0.7 * m["flops_before"]  # the target, really reached
    assert m["flops_share"] < 0.71 and art.manifest.checks["flops_reduced"]
    assert m["pruning"]["mode"] == "flops:sensitivity"
    ratios = m["pruning"]["ratios"]
    assert ratios and all(0 <= r < 1 for r in ratios.values())
    sens = json.loads((art.path / "sensitivity.json").read_text())
    assert set(sens) == set(ratios)  # every prunable conv analysed
    assert m["distill"]["last_loss"] < m["distill"]["first_loss"]  # it learnt
    assert 0 <= m["accuracy"] <= 1 and m["fp32_accuracy"] == 1.0  # fp32 agreement
    assert m["speedup_vs_unpruned"] > 0
    assert art.manifest.precision == "fp32" and (art.path / "model.pdmodel").is_file()


@pytest.mark.parametrize("bad, match", [
    ({"flops_reduction": None}, "exactly one of"),
    ({"flops_reduction": 1.5}, "in \\(0, 1\\)"),
    ({"distill": {"engine": "act"}}, "static engine"),
])
def test_bad_config_names_the_fix(_conv_net, tmp_path, bad, match):
    folder, npz = _conv_net
    with pytest.raises(ConfigError, match=match):
        run_stage("prune_distill", _config(folder, npz, **bad), None, tmp_path / "work")
