"""export can write inference.pdmodel/.pdiparams and a PaddleClas-style inference.yml, which
paddleopt itself reads back when given the bare folder."""
from __future__ import annotations

import shutil

from conftest import tiny_config

from paddleopt import api
from paddleopt.artifact import Artifact


def test_export_writes_inference_files_and_preprocess(tmp_path) -> None:
    cfg = tiny_config(tmp_path / "w")
    cfg["stages"]["train"]["epochs"] = 1
    cfg["stages"]["export"] = {"file_prefix": "inference", "preprocess_file": True,
                               "parity_samples": 4}
    cfg["evaluate"]["targets"] = []
    art = api.run(cfg).artifacts["export"]
    assert art.manifest.files == {"model": "inference.pdmodel", "params": "inference.pdiparams",
                                  "preprocess": "inference.yml"}
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in art.manifest.files.values():  # what a user copies to a device: no manifest
        shutil.copy2(art.path / name, bare / name)
    wrapped = Artifact.open(bare)
    assert wrapped.manifest.preprocess["size"] == art.manifest.preprocess["size"]
    assert wrapped.manifest.preprocess["mean"] == art.manifest.preprocess["mean"]
    assert wrapped.manifest.preprocess["channels"] == 1
    assert wrapped.manifest.labels == art.manifest.labels
