"""The Lite compat rewrite: restores what clip_extra dropped, changes nothing Paddle computes."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.artifact.program import framework_pb2, read_program
from paddleopt.export.lite_compat import check_program, rewrite_model_file, rewrite_program

from .conftest import SHAPES, paddle_outputs


def _attr(op, name):
    return next((a for a in op.attrs if a.name == name), None)


def _outputs(op, slot):
    return next((list(v.arguments) for v in op.outputs if v.parameter == slot), [])


def _var(block, name):
    return next((v for v in block.vars if v.name == name), None)


@pytest.fixture(scope="module")
def rewritten(model_dirs, tmp_path_factory):
    """name -> (report, rewritten .pdmodel path) for the jit.save'd test models."""
    root = tmp_path_factory.mktemp("compat")
    out = {}
    for name in ("cnn", "mbv2"):
        dst = root / name / "model.pdmodel"
        out[name] = (rewrite_model_file(model_dirs[name] / "model.pdmodel", dst), dst)
    return out


def test_clip_extra_export_lacks_what_lite_needs(model_dirs):
    program = read_program(model_dirs["mbv2"] / "model.pdmodel")
    relu6 = [op for op in program.blocks[0].ops if op.type == "relu6"]
    flatten = [op for op in program.blocks[0].ops if op.type == "flatten_contiguous_range"]
    assert relu6 and all(_attr(op, "threshold") is None for op in relu6)
    assert flatten and not _outputs(flatten[0], "XShape")


def test_rewrite_restores_relu6_threshold_and_xshape(rewritten):
    report, path = rewritten["mbv2"]
    assert report.summary() == {"flatten_contiguous_range.XShape": 1, "relu6.threshold": 5}
    program = read_program(path)
    block = program.blocks[0]
    pb2 = framework_pb2()
    for op in block.ops:
        if op.type == "relu6":
            attr = _attr(op, "threshold")
            assert attr.type == pb2.AttrType.FLOAT and attr.f == pytest.approx(6.0)
        if op.type == "flatten_contiguous_range":
            (xshape,) = _outputs(op, "XShape")
            var = _var(block, xshape)
            (x,) = next(list(v.arguments) for v in op.inputs if v.parameter == "X")
            x_dims = list(_var(block, x).type.lod_tensor.tensor.dims)
            # Paddle's convention: XShape = [0] + X's dims, X's dtype, not persistable.
            assert list(var.type.lod_tensor.tensor.dims) == [0, *x_dims]
            assert var.type.lod_tensor.tensor.data_type == pb2.VarType.FP32
            assert not var.persistable


def test_rewrite_restores_dropout_mask_like_clip_extra_false(rewritten):
    report, path = rewritten["cnn"]
    assert report.summary() == {"dropout.Mask": 1, "dropout.fix_seed": 1, "dropout.seed": 1,
                                "flatten_contiguous_range.XShape": 1}
    block = read_program(path).blocks[0]
    dropout = next(op for op in block.ops if op.type == "dropout")
    (mask,) = _outputs(dropout, "Mask")
    assert _var(block, mask).type.lod_tensor.tensor.data_type == framework_pb2().VarType.UINT8
    assert _attr(dropout, "fix_seed").b is False and _attr(dropout, "seed").i == 0


def test_rewrite_is_idempotent_and_check_does_not_modify(rewritten):
    _, path = rewritten["mbv2"]
    program = read_program(path)
    before = program.SerializeToString()
    assert not check_program(program).changed
    assert program.SerializeToString() == before
    assert not rewrite_program(program).changed


def test_paddle_inference_output_unchanged(model_dirs, rewritten):
    for name in ("cnn", "mbv2"):
        x = np.random.default_rng(1).standard_normal((3, *SHAPES[name])).astype(np.float32)
        original = paddle_outputs(model_dirs[name], x)
        # Same params file: the pass never touches parameters.
        repaired = paddle_outputs(model_dirs[name], x, model_file=rewritten[name][1])
        np.testing.assert_array_equal(original, repaired)


def test_unchanged_model_is_copied(tmp_path, rewritten):
    _, path = rewritten["mbv2"]
    dst = tmp_path / "again.pdmodel"
    report = rewrite_model_file(path, dst)
    assert not report.changed and dst.read_bytes() == path.read_bytes()


# -- hand-made programs --------------------------------------------------------------------

def _program():
    pb2 = framework_pb2()
    program = pb2.ProgramDesc()
    block = program.blocks.add()
    block.idx, block.parent_idx = 0, -1
    return pb2, program, block


def _add_var(pb2, block, name, dims, dtype="FP32"):
    var = block.vars.add()
    var.name = name
    var.type.type = pb2.VarType.LOD_TENSOR
    var.type.lod_tensor.tensor.data_type = pb2.VarType.Type.Value(dtype)
    var.type.lod_tensor.tensor.dims.extend(dims)


def _add_op(block, op_type, inputs, outputs, attrs=None):
    op = block.ops.add()
    op.type = op_type
    for slot, names in inputs.items():
        v = op.inputs.add()
        v.parameter = slot
        v.arguments.extend(names)
    for slot, names in outputs.items():
        v = op.outputs.add()
        v.parameter = slot
        v.arguments.extend(names)
    for name, value in (attrs or {}).items():
        a = op.attrs.add()
        a.name, a.type, a.f = name, framework_pb2().AttrType.FLOAT, value
    return op


def test_hand_made_program_every_fix():
    pb2, program, block = _program()
    for name in ("x", "r", "r2", "s", "t", "d", "n"):
        _add_var(pb2, block, name, [-1, 3, 4, 4])
    _add_var(pb2, block, "t.xshape", [1])  # name taken: the pass must pick another
    _add_op(block, "relu6", {"X": ["x"]}, {"Out": ["r"]})
    _add_op(block, "relu6", {"X": ["x"]}, {"Out": ["r2"]}, {"threshold": 3.0})
    _add_op(block, "swish", {"X": ["x"]}, {"Out": ["s"]})
    _add_op(block, "transpose2", {"X": ["x"]}, {"Out": ["t"], "XShape": []})
    _add_op(block, "dropout", {"X": ["x"]}, {"Out": ["d"]})
    _add_op(block, "instance_norm", {"X": ["x"]}, {"Y": ["n"]})
    # A sub-block op reading a parent var (control flow): shapes come from the parent.
    sub = program.blocks.add()
    sub.idx, sub.parent_idx = 1, 0
    _add_var(pb2, sub, "f", [-1, 48])
    _add_op(sub, "flatten_contiguous_range", {"X": ["x"]}, {"Out": ["f"]})

    report = rewrite_program(program)
    assert report.summary() == {
        "dropout.Mask": 1, "dropout.fix_seed": 1, "dropout.seed": 1,
        "flatten_contiguous_range.XShape": 1, "instance_norm.SavedMean": 1,
        "instance_norm.SavedVariance": 1, "relu6.threshold": 1, "swish.beta": 1,
        "transpose2.XShape": 1}
    ops = list(block.ops)
    assert _attr(ops[0], "threshold").f == pytest.approx(6.0)
    assert _attr(ops[1], "threshold").f == pytest.approx(3.0)  # present: kept as is
    assert len([a for a in ops[1].attrs if a.name == "threshold"]) == 1
    assert _attr(ops[2], "beta").f == pytest.approx(1.0)
    (xshape,) = _outputs(ops[3], "XShape")  # the existing empty slot is filled, not duplicated
    assert xshape != "t.xshape" and len([v for v in ops[3].outputs
                                         if v.parameter == "XShape"]) == 1
    assert list(_var(block, xshape).type.lod_tensor.tensor.dims) == [0, -1, 3, 4, 4]
    (mean,) = _outputs(ops[5], "SavedMean")
    assert list(_var(block, mean).type.lod_tensor.tensor.dims) == [-1]
    (sub_xshape,) = _outputs(sub.ops[0], "XShape")
    assert _var(sub, sub_xshape) is not None and _var(block, sub_xshape) is None
    assert list(_var(sub, sub_xshape).type.lod_tensor.tensor.dims) == [0, -1, 3, 4, 4]
    assert all("added" in c.describe() for c in report.changes)
    assert report.to_dict()["changed"] is True


def test_unknown_input_shape_still_gets_a_var():
    pb2, program, block = _program()
    _add_op(block, "flatten_contiguous_range", {"X": ["missing"]}, {"Out": ["f"]})
    report = rewrite_program(program)
    (change,) = report.changes
    var = _var(block, change.value)
    assert list(var.type.lod_tensor.tensor.dims) == [0, -1]
