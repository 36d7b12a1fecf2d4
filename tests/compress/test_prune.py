"""Structured filter pruning really shrinks tensors, FLOPs and the exported model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paddleopt.artifact.program import read_program
from paddleopt.compress.prune import (
    count_flops,
    load_pruned_state,
    prunable_params,
    prune_filters,
)
from paddleopt.utils.errors import UserError

from .conftest import IMAGE_SPEC, TinyCNN, accuracy, input_spec, paddle
from paddleopt.utils.jit import save_layer

SHAPE = [1, 1, 8, 8]


def _export(model, path: Path) -> Path:
    model.eval()
    save_layer(model, str(path / "model"), input_spec=input_spec(IMAGE_SPEC))
    return path


def _conv_filter_shapes(model_dir: Path) -> list[list[int]]:
    program = read_program(model_dir / "model.pdmodel")
    block = program.blocks[0]
    dims = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars}
    return [dims[a] for op in block.ops if op.type == "conv2d"
            for i in op.inputs if i.parameter == "Filter" for a in i.arguments]


def test_prunable_params_names_every_conv(trained_cnn):
    assert prunable_params(trained_cnn, SHAPE) == ["conv1.weight", "conv2.weight",
                                                   "conv3.weight"]


def test_ratios_shrink_tensors_flops_and_export(trained_cnn, tmp_path):
    dense_dir = _export(trained_cnn, tmp_path / "dense")
    report = prune_filters(trained_cnn, SHAPE, criterion="l1",
                           ratios={"conv1.weight": 0.5, "conv2.weight": 0.25})
    # conv1 16 -> 8 filters; bn1 and conv2's input channels follow; conv2 32 -> 24.
    assert report.shapes["conv1.weight"] == [8, 1, 3, 3]
    assert report.shapes["bn1.weight"] == [8]
    assert report.shapes["conv2.weight"] == [24, 8, 3, 3]
    assert report.shapes["conv3.weight"] == [32, 24, 3, 3]
    assert trained_cnn.conv1._out_channels == 8 and trained_cnn.bn2._num_features == 24
    assert report.flops_after < report.flops_before
    assert report.params_after < report.params_before
    assert report.flops_after == count_flops(trained_cnn, SHAPE)
    # No full-size backups left behind in the checkpoint.
    assert not [k for k in trained_cnn.state_dict() if k.endswith("_backup")]
    out = trained_cnn(paddle.rand([5, 1, 8, 8]))
    assert out.shape == [5, 10]
    # The exported model is physically smaller: real shapes, not masks.
    pruned_dir = _export(trained_cnn, tmp_path / "pruned")
    assert _conv_filter_shapes(pruned_dir) == [[8, 1, 3, 3], [24, 8, 3, 3], [32, 24, 3, 3]]
    assert _conv_filter_shapes(dense_dir) == [[16, 1, 3, 3], [32, 16, 3, 3], [32, 32, 3, 3]]
    dense_size = (dense_dir / "model.pdiparams").stat().st_size
    pruned_size = (pruned_dir / "model.pdiparams").stat().st_size
    assert pruned_size < 0.75 * dense_size


def test_flops_target_by_sensitivity(trained_cnn, trained_state, digits, tmp_path):
    x, y = digits["x_val"], digits["y_val"]
    sen_file = tmp_path / "sens.json"
    report = prune_filters(trained_cnn, SHAPE, criterion="fpgm", flops_reduction=0.5,
                           eval_fn=lambda m: accuracy(m, x, y), sen_file=sen_file)
    assert report.mode in ("flops:sensitivity", "flops:uniform")  # uniform = documented fallback
    assert abs(report.flops_reduction - 0.5) <= 0.1, report.to_dict()
    assert set(report.sensitivities) == {"conv1.weight", "conv2.weight", "conv3.weight"}
    assert all(len(s) == 9 for s in report.sensitivities.values())  # ratios 0.1 .. 0.9
    assert trained_cnn(paddle.to_tensor(x[:4])).shape == [4, 10]

    # The JSON cache is keyed by structured names, so a model built later (other unique
    # parameter names) reuses it without evaluating; tolerance 0 forces the uniform fallback.
    def must_not_run(model):
        raise AssertionError("sensitivities should come from the cache")

    again = TinyCNN()
    again.set_state_dict(trained_state)
    report2 = prune_filters(again, SHAPE, criterion="fpgm", flops_reduction=0.5,
                            eval_fn=must_not_run, sen_file=sen_file, tolerance=0.0)
    assert report2.sensitivities == report.sensitivities
    assert report2.mode == "flops:uniform" and "uniform spread instead" in report2.note
    assert abs(report2.flops_reduction - 0.5) <= 0.05


@pytest.mark.parametrize("criterion", ["l1", "l2", "fpgm"])
def test_flops_target_uniform_each_criterion(trained_cnn, criterion):
    report = prune_filters(trained_cnn, SHAPE, criterion=criterion, flops_reduction=0.4,
                           spread="uniform")
    assert report.mode == "flops:uniform"
    assert abs(report.flops_reduction - 0.4) <= 0.05, report.to_dict()
    assert len(set(report.ratios.values())) == 1  # one shared ratio


def test_pruned_checkpoint_reloads_into_fresh_model(trained_cnn):
    prune_filters(trained_cnn, SHAPE, ratios={"conv2.weight": 0.5, "conv3.weight": 0.5})
    fresh = TinyCNN()
    load_pruned_state(fresh, trained_cnn.state_dict())
    fresh.eval()
    x = paddle.rand([3, 1, 8, 8])
    np.testing.assert_allclose(fresh(x).numpy(), trained_cnn(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"ratios": {"conv1.weight": 1.2}}, r"must be in \[0, 1\)"),
    ({"ratios": {"conv9.weight": 0.5}}, "not a prunable conv weight"),
    ({"ratios": {"fc.weight": 0.5}}, "conv1.weight, conv2.weight, conv3.weight"),
    ({"flops_reduction": 0.0}, r"must be in \(0, 1\)"),
    ({"flops_reduction": 0.5}, "needs an eval_fn"),
    ({"ratios": {"conv1.weight": 0.5}, "flops_reduction": 0.5}, "exactly one"),
    ({"ratios": {"conv1.weight": 0.5}, "criterion": "l3"}, "l1, l2, fpgm"),
])
def test_bad_arguments_raise_user_error(trained_cnn, kwargs, match):
    with pytest.raises(UserError, match=match):
        prune_filters(trained_cnn, SHAPE, **kwargs)
