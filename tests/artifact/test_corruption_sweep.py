"""36 corrupted copies of a real exported model, each through `infer` and `bench` in a real
process: never a crash, a traceback or exit 1; exit 2 with an error line wherever the
corruption is detectable (slow: ~70 processes; the fast suite has one case per kind in
test_integrity.py)."""
from __future__ import annotations

import hashlib
import json
import random
import shutil

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


def _redigest(folder) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for role, rel in manifest["files"].items():
        path = folder / rel
        if path.is_file():
            manifest["file_digests"][role] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit(folder, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def corruptions(src, root) -> dict[str, tuple]:
    """name -> (folder, must_fail). must_fail False: a change Paddle may legitimately run
    (a flipped bit in an attribute, a wrong input name with digests made to agree)."""
    out: dict[str, tuple] = {}
    rng = random.Random(0)
    model = (src / "model.pdmodel").read_bytes()
    params = (src / "model.pdiparams").read_bytes()

    def copy(name, must_fail=True):
        folder = root / name
        shutil.copytree(src, folder)
        out[name] = (folder, must_fail)
        return folder

    for frac in (0.1, 0.5, 0.9, 0.99):
        (copy(f"model_trunc_{frac}") / "model.pdmodel").write_bytes(model[:int(len(model) * frac)])
        _redigest(root / f"model_trunc_{frac}")
    for i in range(8):
        data = bytearray(model)
        for _ in range(3):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        folder = copy(f"model_flip_{i}", must_fail=False)
        (folder / "model.pdmodel").write_bytes(bytes(data))
        _redigest(folder)
    for frac in (0.0, 0.3, 0.999):
        folder = copy(f"params_trunc_{frac}")
        (folder / "model.pdiparams").write_bytes(params[:int(len(params) * frac)])
        _redigest(folder)
    for name, role, data in (("model_empty", "model.pdmodel", b""),
                             ("model_random", "model.pdmodel", rng.randbytes(len(model))),
                             ("params_random", "model.pdiparams", rng.randbytes(len(params))),
                             ("params_are_the_program", "model.pdiparams", model)):
        folder = copy(name)
        (folder / role).write_bytes(data)
        _redigest(folder)
    (copy("params_missing") / "model.pdiparams").unlink()
    (copy("model_missing") / "model.pdmodel").unlink()
    folder = copy("params_is_dir")
    (folder / "model.pdiparams").unlink()
    (folder / "model.pdiparams").mkdir()
    for name, data in (("manifest_empty", b""), ("manifest_list", b"[1, 2]"),
                       ("manifest_bytes", b"\x00\xff{"), ("manifest_null", b"null")):
        (copy(name) / "manifest.json").write_bytes(data)
    edits = {
        "files_traversal": lambda m: m["files"].update(params="../../../../etc/hostname"),
        "files_absolute": lambda m: m["files"].update(params="/etc/hostname"),
        "files_empty": lambda m: m.update(files={}),
        "kind_bogus": lambda m: m.update(kind="bogus"),
        "kind_lite": lambda m: m.update(kind="lite"),
        "io_wrong_dtype": lambda m: m["io"]["inputs"][0].update(dtype="complex128"),
        "labels_not_a_list": lambda m: m.update(labels=5),
        "no_file_digests": lambda m: m.pop("file_digests"),
        "digest_wrong": lambda m: m["file_digests"].update(params="0" * 64),
    }
    for name, change in edits.items():
        folder = copy(name)
        _edit(folder, change)
    for name in ("files_traversal", "files_absolute"):
        _redigest(root / name)
    folder = copy("io_bad_name", must_fail=False)
    _edit(folder, lambda m: m["io"]["inputs"][0].update(name="nope"))
    return out


def test_corrupted_model_folders(tiny_inference, tmp_path):
    cases = corruptions(tiny_inference.path, tmp_path)
    assert len(cases) >= 36
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 1, 8, 8), np.float32))
    problems = []
    for name, (folder, must_fail) in sorted(cases.items()):
        for args in (("infer", str(folder), str(npy)),
                     ("bench", str(folder), "--iters", "2", "--warmup", "1",
                      "--eval-samples", "8")):
            proc = run_cli(*args, timeout=300)
            ok = proc.returncode in ((2,) if must_fail else (0, 2))
            if not ok or "Traceback" in proc.stderr or \
                    (proc.returncode == 2 and "error:" not in proc.stderr):
                problems.append(f"{name} {args[0]}: exit {proc.returncode}: "
                                f"{proc.stderr.strip().splitlines()[-1:]}")
    assert not problems, "\n".join(problems)
