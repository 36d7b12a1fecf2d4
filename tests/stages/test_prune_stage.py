"""prune stage on the tiny digits LeNet: FLOPs and params really go down, the pruned
checkpoint reloads, exports (parity-checked) and runs eagerly; bad settings fail at plan."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from paddleopt.artifact.program import read_program
from paddleopt.stages.pipeline import plan
from paddleopt.utils.errors import ConfigError, UserError
from stage_helpers import QUICK_FT, run_stage


def _conv_filters(model_file) -> list[list[int]]:
    block = read_program(model_file).blocks[0]
    dims = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars}
    return [dims[a] for op in block.ops if op.type == "conv2d"
            for i in op.inputs if i.parameter == "Filter" for a in i.arguments]


@pytest.fixture(scope="module")
def pruned(tiny_checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("prune")
    art = run_stage("prune", {"criterion": "fpgm", "flops_reduction": 0.4,
                              "sensitivity_samples": 100, "finetune": QUICK_FT},
                    tiny_checkpoint, work)
    return work, art


def test_flops_target_reduces_flops_and_params(pruned, tiny_checkpoint):
    _, art = pruned
    m = art.manifest.metrics
    assert art.kind == "checkpoint"
    assert m["flops_after"] < m["flops_before"] and m["params_after"] < m["params_before"]
    assert abs(m["flops_reduction"] - 0.4) <= 0.1, m["prune"]
    assert m["prune"]["mode"] in ("flops:sensitivity", "flops:uniform")
    # the stage-table FLOPs/params (same counter as train) go down too
    assert m["flops"] < tiny_checkpoint.manifest.metrics["flops"]
    assert m["params"] == m["params_after"] < tiny_checkpoint.manifest.metrics["params"]
    assert m["accuracy"] > 0.5 and m["heldout_accuracy_before"] > 0.5
    shapes = art.manifest.model["pruned_shapes"]
    assert shapes and all(isinstance(v, list) for v in shapes.values())
    assert "sensitivity" in art.manifest.files  # the analysis travels with the artifact


def test_pruned_checkpoint_reloads_exports_and_runs_eagerly(pruned, tiny_checkpoint):
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.models.loading import load_checkpoint_model

    work, art = pruned
    model = load_checkpoint_model(art)
    assert sum(int(np.prod(p.shape)) for p in model.parameters()) == \
        art.manifest.metrics["params"]
    exported = run_stage("export", {}, art, work, stage_id="export_pruned")
    assert exported.manifest.checks["parity_paddle_inference_vs_dygraph_max_abs_diff"] < 1e-4
    dense = _conv_filters(tiny_checkpoint.path.parent / "02_export" / "model.pdmodel")
    small = _conv_filters(exported.file("model"))
    assert sum(np.prod(s) for s in small) < sum(np.prod(s) for s in dense)
    eager = load_predictor(art, "eager")
    out = eager.run([np.zeros((3, 1, 8, 8), "float32")])[0]
    assert out.shape == (3, 10)


def test_ratios_without_finetuning(tiny_checkpoint, tmp_path):
    art = run_stage("prune", {"criterion": "l2", "ratios": {"features.3.weight": 0.5},
                              "align": None, "finetune": None}, tiny_checkpoint, tmp_path)
    m = art.manifest.metrics
    assert m["prune"]["mode"] == "ratios" and m["prune"]["ratios"] == {"features.3.weight": 0.5}
    assert art.manifest.model["pruned_shapes"]["features.3.weight"][0] == 8  # 16 -> 8 filters
    assert "history" not in m or not m["history"]


def test_unknown_layer_lists_the_prunable_ones(tiny_checkpoint, tmp_path):
    with pytest.raises(UserError, match="features.0.weight, features.3.weight"):
        run_stage("prune", {"ratios": {"conv9.weight": 0.5}, "finetune": None},
                  tiny_checkpoint, tmp_path)


@pytest.mark.parametrize("stage, match", [
    ({"flops_reduction": 1.2}, r"flops_reduction must be in \(0, 1\)"),
    ({"flops_reduction": 0.0}, r"flops_reduction must be in \(0, 1\)"),
    ({"ratios": {"features.0.weight": 1.0}}, r"must be in \[0, 1\)"),
    ({"ratios": {"features.0.weight": 0.5}, "flops_reduction": 0.5}, "exactly one"),
    ({}, "exactly one of ratios or flops_reduction"),
    ({"flops_reduction": 0.5, "criterion": "l3"}, "'l3' is not allowed"),
    ({"flops_reduction": 0.5, "finetune": {"epochs": 0}}, "epochs must be >= 1"),
    ({"flops_reduction": 0.5, "finetune": {"fleet": {"backend": "nccl"}}}, "nccl needs GPUs"),
])
def test_bad_config_fails_at_plan(tmp_path, stage, match):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "prune": stage}
    with pytest.raises(ConfigError, match=match):
        plan(cfg)


def test_prune_needs_a_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "export": {}, "prune": {"flops_reduction": 0.5}}
    with pytest.raises(ConfigError, match="consumes checkpoint, but the stage before it "
                                          "produces inference"):
        plan(cfg)
