"""Every reader verifies an artifact before Paddle sees it: digests, program structure, inputs.

A corrupted file must end in a one-paragraph UserError (exit 2, no traceback), never in a
segfault, a traceback or a silently different answer.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from paddleopt.utils.errors import UserError


def assert_user_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def copy_artifact(src, dst):
    shutil.copytree(src, dst)
    return dst


def redigest(folder) -> None:
    """Make the manifest agree with the (corrupted) files, as a careful attacker would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for role, rel in manifest["files"].items():
        manifest["file_digests"][role] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_artifact_names_the_corrupt_file(tiny_inference, tmp_path):
    from paddleopt.artifact import verify_artifact

    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    assert verify_artifact(folder).path == folder  # intact: passes
    flip_last_byte(folder / "model.pdiparams")
    with pytest.raises(UserError, match=r"model\.pdiparams.*sha256") as err:
        verify_artifact(folder)
    assert "re-run the stage" in err.value.fix


def test_manifest_without_file_digests_is_refused(tiny_inference, tmp_path):
    from paddleopt import api

    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["file_digests"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    flip_last_byte(folder / "model.pdiparams")  # would otherwise answer differently
    with pytest.raises(UserError, match="no 'file_digests'"):
        api.infer(folder, [str(_npy(tmp_path, np.zeros((1, 1, 8, 8), np.float32)))])


def test_params_that_is_a_directory(tiny_inference, tmp_path):
    from paddleopt.artifact import verify_artifact

    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    (folder / "model.pdiparams").unlink()
    (folder / "model.pdiparams").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        verify_artifact(folder)
    (folder / "manifest.json").unlink()  # a bare folder: found while locating its files
    with pytest.raises(UserError, match="is a directory"):
        verify_artifact(folder)


def test_program_that_parses_but_names_missing_variables(tiny_inference, tmp_path):
    """Protobuf accepts it; Paddle would trust it. The structure check refuses it."""
    from paddleopt.artifact.program import read_program, validate_program

    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    program = read_program(folder / "model.pdmodel")
    op = next(op for op in program.blocks[0].ops if op.type not in ("feed", "fetch"))
    op.inputs[0].arguments[0] = "no_such_variable"
    (folder / "model.pdmodel").write_bytes(program.SerializeToString())
    redigest(folder)
    with pytest.raises(UserError, match="no_such_variable.*does not declare"):
        validate_program(folder / "model.pdmodel")
    from paddleopt.artifact import verify_artifact

    with pytest.raises(UserError, match="not a valid Paddle inference program"):
        verify_artifact(folder)  # digests agree, the structure does not


def test_foreign_folder_is_flagged(tiny_inference, tmp_path):
    import logging

    from paddleopt.artifact import verify_artifact

    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    (folder / "manifest.json").unlink()
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("paddleopt").addHandler(handler)
    try:
        art = verify_artifact(folder)
    finally:
        logging.getLogger("paddleopt").removeHandler(handler)
    assert art.foreign
    assert any("cannot be checked for corruption" in m for m in seen)


def _npy(folder, array, name="x.npy"):
    path = folder / name
    np.save(path, array, allow_pickle=True)
    return path


@pytest.mark.parametrize("array, needle", [
    (np.array([{"a": 1}], dtype=object), "object arrays"),
    (np.full((1, 1, 8, 8), np.nan, np.float32), "NaN or Inf"),
    (np.zeros((1, 1, 8, 8), np.complex64), "complex64 is not a real number"),
    (np.zeros((1, 1, 8, 8), bool), "bool is not a real number"),
    (np.zeros((1, 1, 8, 8), np.float64) + 0.5, None),  # float64 -> float32: fine
    (np.zeros((1, 3, 8, 8), np.float32), "does not fit"),
])
def test_infer_refuses_arrays_the_model_cannot_mean(tiny_inference, tmp_path, array, needle):
    from paddleopt import api

    path = _npy(tmp_path, array)
    if needle is None:
        assert api.infer(tiny_inference.path, [str(path)])[0]["predictions"]
        return
    with pytest.raises(UserError, match=needle):
        api.infer(tiny_inference.path, [str(path)])


def test_infer_refuses_a_decompression_bomb(tiny_inference, tmp_path):
    from PIL import Image

    from paddleopt import api

    bomb = tmp_path / "bomb.png"
    Image.new("1", (30000, 30000)).save(bomb)  # 900 Mpixel, ~100 KB on disk
    with pytest.raises(UserError, match="too large to decode safely"):
        api.infer(tiny_inference.path, [str(bomb)])


def test_random_bytes_model_exits_2_in_bench_and_infer(cli, tiny_inference, tmp_path):
    """Reported: exit 139 (segfault) when a manifest with matching digests exists."""
    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    (folder / "model.pdmodel").write_bytes(np.random.default_rng(0).bytes(5000))
    redigest(folder)
    npy = _npy(tmp_path, np.zeros((1, 1, 8, 8), np.float32))
    assert_user_error(cli("bench", str(folder), "--iters", "2"), "model.pdmodel")
    assert_user_error(cli("infer", str(folder), str(npy)), "model.pdmodel")
    os.remove(folder / "manifest.json")  # the same file in a bare folder
    assert_user_error(cli("infer", str(folder), str(npy)), "not a Paddle program")


@pytest.mark.parametrize("settings, needle", [
    ({"batch_sizes": [0]}, "batch_sizes"), ({"batch_sizes": [-1]}, "batch_sizes"),
    ({"iters": 0}, "iters"), ({"warmup": -1}, "warmup"), ({"max_seconds": -1}, "max_seconds"),
    ({"eval_samples": 0}, "eval_samples"),
])
def test_bench_settings_are_checked_before_any_work(tiny_inference, settings, needle):
    """Reported: --batch-size 0 / --eval-samples 0 raised ZeroDivisionError/ValueError."""
    from paddleopt import api

    with pytest.raises(UserError, match=needle) as err:
        api.bench(tiny_inference.path, **settings)
    assert "--batch-size" in err.value.fix


@pytest.mark.parametrize("top_k, needle", [(0, ">= 1"), (-1, ">= 1"), (11, "scores 10 classes")])
def test_infer_top_k_out_of_range(tiny_inference, tmp_path, top_k, needle):
    from paddleopt import api

    npy = _npy(tmp_path, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(UserError, match=needle):
        api.infer(tiny_inference.path, [str(npy)], top_k=top_k)


def test_infer_refuses_an_empty_batch(tiny_inference, tmp_path):
    from paddleopt import api

    npy = _npy(tmp_path, np.zeros((0, 1, 8, 8), np.float32))
    with pytest.raises(UserError, match="holds no samples"):
        api.infer(tiny_inference.path, [str(npy)])


@pytest.mark.parametrize("rel", ["../outside.pdiparams", "/etc/hostname"])
def test_manifest_files_cannot_point_outside_the_folder(tiny_inference, tmp_path, rel):
    """Even with digests that agree: the artifact would vouch for someone else's file."""
    from paddleopt.artifact import verify_artifact

    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    shutil.copy(folder / "model.pdiparams", tmp_path / "outside.pdiparams")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["params"] = rel
    (folder / "manifest.json").write_text(json.dumps(manifest))
    redigest(folder)
    with pytest.raises(UserError, match="outside the artifact folder"):
        verify_artifact(folder)


def test_manifest_tensor_dtype_is_checked(tiny_inference, tmp_path):
    """Reported by the corruption sweep: dtype complex128 in io.inputs crashed bench."""
    from paddleopt.artifact import Artifact

    folder = copy_artifact(tiny_inference.path, tmp_path / "a")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["io"]["inputs"][0]["dtype"] = "complex128"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="complex128"):
        Artifact.open(folder)


def test_one_tensor_check_for_files_and_requests():
    """The CLI's files and the server's requests share ``checked_tensor``: a bool tensor is
    taken by a bool input and refused by a float one, with the same message for both (the
    server answers it as HTTP 422)."""
    from paddleopt.artifact.manifest import TensorSpec
    from paddleopt.deploy.inputs import checked_tensor
    from paddleopt.serve.inputs import RequestError, _checked

    mask = TensorSpec("mask", [-1, 4], "bool")
    assert checked_tensor(np.ones((2, 4), bool), mask, "mask.npy").dtype == np.bool_
    assert _checked(np.ones((2, 4), bool), mask).dtype == np.bool_
    x = TensorSpec("x", [-1, 4], "float32")
    with pytest.raises(UserError, match="dtype bool is not a real number") as cli:
        checked_tensor(np.ones((2, 4), bool), x, "input 'x'")
    with pytest.raises(RequestError) as http:
        _checked(np.ones((2, 4), bool), x)
    assert http.value.status == 422 and http.value.message == cli.value.message
