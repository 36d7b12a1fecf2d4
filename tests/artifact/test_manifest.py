"""Manifests: round trip, digests, corruption detection, child derivation, foreign dirs."""
from __future__ import annotations

import json

import pytest

from paddleopt.artifact import Artifact, IOSpec, LineageEntry, Manifest, TensorSpec
from paddleopt.utils.errors import UserError


def make_artifact(folder, content=b"weights"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pdparams").write_bytes(content)
    manifest = Manifest(kind="checkpoint", files={"weights": "model.pdparams"},
                        io=IOSpec(inputs=[TensorSpec("x", [-1, 1, 8, 8])],
                                  outputs=[TensorSpec("logits", [-1, 10])]),
                        preprocess={"type": "image"}, labels=["a", "b"],
                        lineage=[LineageEntry("train", "train", {"epochs": 1}, "f" * 64)],
                        metrics={"accuracy": 0.9})
    manifest.save(folder)
    return Artifact.open(folder)


def test_round_trip_keeps_every_field(tmp_path):
    art = make_artifact(tmp_path / "a")
    data = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert data["kind"] == "checkpoint" and data["io"]["inputs"][0]["shape"] == [-1, 1, 8, 8]
    assert art.manifest.lineage[0].config == {"epochs": 1}
    assert art.manifest.file_digests["weights"] and art.manifest.created
    assert art.file("weights").read_bytes() == b"weights"


def test_verify_detects_a_modified_file(tmp_path):
    art = make_artifact(tmp_path / "a")
    art.verify()
    (tmp_path / "a" / "model.pdparams").write_bytes(b"corrupted")
    with pytest.raises(UserError, match="does not match the sha256"):
        art.verify()


def test_digest_changes_with_content(tmp_path):
    a = make_artifact(tmp_path / "a", b"one")
    b = make_artifact(tmp_path / "b", b"two")
    assert a.digest() != b.digest()


def test_derive_keeps_description_and_drops_file_facts(tmp_path):
    art = make_artifact(tmp_path / "a")
    child = art.manifest.derive(kind="inference", files={"model": "m.pdmodel"})
    assert child.kind == "inference" and child.files == {"model": "m.pdmodel"}
    assert child.labels == ["a", "b"] and child.preprocess == {"type": "image"}
    assert child.metrics == {} and child.file_digests == {}
    child.labels.append("c")
    assert art.manifest.labels == ["a", "b"]  # a deep copy


def test_missing_role_and_missing_folder_are_user_errors(tmp_path):
    art = make_artifact(tmp_path / "a")
    with pytest.raises(UserError, match="has no 'model' file"):
        art.file("model")
    with pytest.raises(UserError, match="does not exist"):
        Artifact.open(tmp_path / "missing")


def test_folder_without_model_is_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a paddleopt artifact"):
        Artifact.open(tmp_path / "empty")


def test_invalid_manifest_is_a_user_error(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text('{"kind": "banana"}')
    with pytest.raises(UserError, match="not a valid paddleopt manifest"):
        Artifact.open(tmp_path / "m")
