"""paddle_lite_opt in a subprocess: conversions, op tables, and failures that must not kill us."""
from __future__ import annotations

import sys

import pytest

from paddleopt.export.lite_compat import rewrite_model_file
from paddleopt.export.lite_opt import (OptError, nb_ops, optimize, parse_op_table,
                                       parse_unsupported_ops, read_nb_header, supported_ops)
from paddleopt.utils.errors import UserError


@pytest.fixture(scope="module")
def repaired(model_dirs, tmp_path_factory):
    """name -> (model_file, params_file) after the compat rewrite."""
    root = tmp_path_factory.mktemp("opt_models")
    out = {}
    for name in ("cnn", "mbv2"):
        dst = root / name / "model.pdmodel"
        rewrite_model_file(model_dirs[name] / "model.pdmodel", dst)
        out[name] = (dst, model_dirs[name] / "model.pdiparams")
    return out


@pytest.fixture(scope="module")
def converted(repaired, tmp_path_factory):
    """target -> OptResult for the repaired MiniMobileNetV2 (one opt run per target)."""
    root = tmp_path_factory.mktemp("opt_out")
    model, params = repaired["mbv2"]
    return {t: optimize(model, params, root / f"mbv2_{t}.nb", t) for t in ("arm", "x86", "opencl")}


def test_converts_for_every_target(converted, tmp_path):
    for result in converted.values():
        assert result.nb_file.is_file() and result.size_bytes == result.nb_file.stat().st_size
        assert read_nb_header(result.nb_file)["opt_version"].startswith("v2.13")
        assert result.run.returncode == 0 and "successfully" in result.run.output
    arm_ops = nb_ops(converted["arm"].nb_file, tmp_path / "arm")
    x86_ops = nb_ops(converted["x86"].nb_file, tmp_path / "x86")
    assert arm_ops["conv2d"] == 5 and arm_ops["depthwise_conv2d"] == 2
    assert "fc" in arm_ops  # ARM fuses flatten+matmul+add into fc; x86 keeps matmul_v2
    assert "matmul_v2" in x86_ops and "calib" not in x86_ops


def test_supported_op_tables():
    arm, x86, opencl = supported_ops("arm"), supported_ops("x86"), supported_ops("opencl")
    assert arm.places == ["kARM", "kHost", "kUnk"] and "kX86" in x86.places
    assert "kOpenCL" in opencl.places and "kARM" in opencl.places  # OpenCL has ARM fallback
    assert arm.ops["conv2d"] == ["kARM"] and x86.ops["conv2d"] == ["kX86"]
    assert "relu6" in arm.ops and "channel_shuffle" not in arm.ops
    assert supported_ops("arm") is arm  # cached


def test_parse_op_table_columns():
    text = ("Supported OPs on ' kARM kHost':\n"
            "                 OP_name  kARM  kHost\n"
            "                     abs     Y      Y\n"
            "                  conv2d     Y       \n"
            "                    cast            Y\n")
    table = parse_op_table(text, "arm")
    assert table.ops == {"abs": ["kARM", "kHost"], "conv2d": ["kARM"], "cast": ["kHost"]}
    with pytest.raises(UserError, match="supported-op table"):
        parse_op_table("garbage", "arm")


def test_parse_unsupported_ops():
    line = ("Error: This model is not supported, because 2 ops are not supported on 'arm'. "
            "These unsupported ops are: 'channel_shuffle', 'brelu'.")
    assert parse_unsupported_ops(f"noise\n{line}\n") == ["channel_shuffle", "brelu"]
    assert parse_unsupported_ops("all good") == []


# -- failure isolation: opt aborts or segfaults; we get a UserError with its words ----------

def test_missing_relu6_threshold_aborts_opt_not_us(model_dirs, tmp_path):
    raw = model_dirs["mbv2"]
    with pytest.raises(OptError) as info:
        optimize(raw / "model.pdmodel", raw / "model.pdiparams", tmp_path / "m.nb", "arm")
    err = info.value
    assert err.run.returncode < 0 and "SIGABRT" in str(err)
    assert "No attributes called threshold found for relu6" in str(err)  # opt's own words
    assert err.missing_attrs == [("relu6", "threshold")]
    assert "compat_rewrite" in err.fix and "paddle_lite_opt" in str(err)  # command to rerun
    assert not (tmp_path / "m.nb").exists()


def test_missing_xshape_segfaults_opt_not_us(model_dirs, tmp_path):
    raw = model_dirs["cnn"]
    with pytest.raises(OptError) as info:
        optimize(raw / "model.pdmodel", raw / "model.pdiparams", tmp_path / "m.nb", "x86")
    assert "SIGSEGV" in str(info.value) and "Model is successfully loaded" in str(info.value)
    assert "clip_extra" in info.value.fix


def test_unsupported_op_named(model_dirs, tmp_path):
    d = model_dirs["shuffle"]
    with pytest.raises(OptError) as info:
        optimize(d / "model.pdmodel", d / "model.pdiparams", tmp_path / "m.nb", "arm")
    assert info.value.unsupported_ops == ["channel_shuffle"]
    assert "unsupported ops on 'arm': channel_shuffle" in str(info.value)


def _fake_opt(code: str) -> list[str]:
    """A stand-in opt command: Python running ``code`` (args are ignored)."""
    return [sys.executable, "-c", code]


def test_crash_and_partial_output_are_reported(repaired, tmp_path):
    model, params = repaired["cnn"]
    code = "import os, sys; print('step 1 done'); sys.stdout.flush(); os.abort()"
    with pytest.raises(OptError) as info:
        optimize(model, params, tmp_path / "m.nb", "x86", command=_fake_opt(code),
                 known_unsupported=["mystery_op"])
    assert "step 1 done" in str(info.value) and "SIGABRT" in str(info.value)
    assert info.value.unsupported_ops == ["mystery_op"]  # from the pre-check
    assert 1 + 1 == 2  # still alive


def test_exit_zero_without_nb_is_a_failure(repaired, tmp_path):
    model, params = repaired["cnn"]
    with pytest.raises(OptError, match="exited 0 but wrote no m.nb"):
        optimize(model, params, tmp_path / "m.nb", "x86", command=_fake_opt("print('usage')"))


def test_timeout(repaired, tmp_path):
    model, params = repaired["cnn"]
    with pytest.raises(OptError, match="timed out after"):
        optimize(model, params, tmp_path / "m.nb", "x86", timeout=1,
                 command=_fake_opt("import time; time.sleep(30)"))


def test_bad_target_and_bad_nb(tmp_path):
    with pytest.raises(UserError, match="unknown Lite target"):
        supported_ops("riscv")
    junk = tmp_path / "junk.nb"
    junk.write_bytes(b"not a model at all, just bytes")
    with pytest.raises(UserError, match="not a Paddle Lite naive-buffer"):
        read_nb_header(junk)
    # A file with a plausible header but garbage body: Lite aborts in the child, not here.
    junk.write_bytes(b"\x02\x00v2.13-rc" + b"\x00" * 8 + b"\xff" * 64)
    with pytest.raises(UserError, match="cannot load"):
        nb_ops(junk, tmp_path / "vis")


def test_instance_norm_and_swish_need_the_rewrite(model_dirs, tmp_path):
    d = model_dirs["norm_swish"]
    params = d / "model.pdiparams"
    with pytest.raises(OptError) as info:
        optimize(d / "model.pdmodel", params, tmp_path / "raw.nb", "x86")
    assert "is_dispensable || is_have_output" in str(info.value)  # instance_norm outputs
    report = rewrite_model_file(d / "model.pdmodel", tmp_path / "fixed.pdmodel")
    assert report.summary() == {"instance_norm.SavedMean": 1,
                                "instance_norm.SavedVariance": 1, "swish.beta": 1}
    for target in ("arm", "x86"):
        assert optimize(tmp_path / "fixed.pdmodel", params, tmp_path / f"{target}.nb",
                        target).size_bytes > 0
