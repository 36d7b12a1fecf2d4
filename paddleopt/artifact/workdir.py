"""A pipeline's work dir as a set of artifacts: one finished folder per stage (``02_export``),
and which of them descend from the same trained model.

The pipeline writes work dirs; the report, ``bench -c``, ``bench --matrix`` and the API read
them through these functions (one scanner, so they agree on what counts as finished).
"""
from __future__ import annotations

from pathlib import Path

from paddleopt.artifact.artifact import Artifact
from paddleopt.artifact.manifest import MANIFEST_NAME
from paddleopt.utils.errors import UserError


def _finished_folders(parent: Path) -> list[Path]:
    """Folders holding a manifest, in name (= stage) order; ``.NN_x.tmp`` folders of a running
    or killed stage start with a dot and are never finished."""
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / MANIFEST_NAME).is_file())


def stage_artifacts(work_dir: str | Path) -> list[Artifact]:
    """Finished artifacts in a work dir, in stage order (for report / bench -c)."""
    return [Artifact.open(folder) for folder in _finished_folders(Path(work_dir))]


def model_key(artifact: Artifact) -> str:
    """Identity of the trained weights an artifact descends from: the first lineage entry's
    fingerprint (the stage that created the weights). Without lineage (a foreign model
    folder) an artifact only matches itself."""
    lineage = artifact.manifest.lineage
    return f"lineage:{lineage[0].fingerprint}" if lineage else f"path:{artifact.path.resolve()}"


def siblings(artifact: Artifact, extra: list[str | Path] | None = None) -> list[Artifact]:
    """``artifact`` plus the finished artifacts next to it that descend from the same model,
    in folder order, plus ``extra`` paths (taken as given)."""
    found: dict[Path, Artifact] = {}
    key = model_key(artifact)
    parent = artifact.path.resolve().parent
    if (artifact.path / MANIFEST_NAME).is_file() and parent.is_dir():
        for folder in _finished_folders(parent):
            try:
                other = Artifact.open(folder)
            except UserError:
                continue  # a broken folder is not a deployment; bench of it says why
            if model_key(other) == key:
                found[folder.resolve()] = other
    found.setdefault(artifact.path.resolve(), artifact)
    for path in extra or []:
        other = Artifact.open(path)
        found.setdefault(other.path.resolve(), other)
    return sorted(found.values(), key=lambda a: str(a.path.resolve()))
