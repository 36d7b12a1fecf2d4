"""The manifest: what an artifact folder holds, written by the stage that made it."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paddleopt.config.schema import parse, to_dict

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
Kind = Literal["checkpoint", "inference", "onnx", "lite"]
KINDS: tuple[str, ...] = ("checkpoint", "inference", "onnx", "lite")


@dataclass
class TensorSpec:
    """One input or output tensor: -1 in ``shape`` marks a dynamic dimension.

    ``min_shape``/``opt_shape``/``max_shape`` (inputs with dynamic dimensions): the concrete
    shapes the model is calibrated, checked, timed and benchmarked at (``opt_shape``) and the
    range it must accept (TensorRT's min/opt/max); see ``paddleopt.artifact.shapes``.
    """

    name: str
    shape: list[int]
    dtype: str = "float32"
    lod_level: int = 0
    min_shape: list[int] | None = None
    opt_shape: list[int] | None = None
    max_shape: list[int] | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.dtype not in TENSOR_DTYPES:
            return (f"tensor '{self.name}' has dtype {self.dtype!r}",
                    f"use one of {', '.join(TENSOR_DTYPES)} (re-run the stage that wrote it)")
        return None


# What a model input/output can be ("unknown": a foreign program's non-tensor variable).
TENSOR_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16",
                 "int8", "uint8", "bool", "unknown")


@dataclass
class IOSpec:
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)


@dataclass
class LineageEntry:
    """One stage that contributed to this artifact."""

    stage: str  # stage id in the pipeline (e.g. "finetune")
    type: str  # catalogue name (e.g. "train")
    config: dict[str, Any]
    fingerprint: str
    parent_digest: str | None = None
    finished_at: str = ""


@dataclass
class Manifest:
    kind: Kind
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to the folder
    io: IOSpec = field(default_factory=IOSpec)
    precision: str = "fp32"  # fp32 | fp16 | bf16 | int8
    quantization: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # spec to rebuild a dygraph model
    labels: list[str] = field(default_factory=list)
    dataset: dict[str, Any] = field(default_factory=dict)  # where eval data comes from
    lineage: list[LineageEntry] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    file_digests: dict[str, str] = field(default_factory=dict)  # role -> sha256, set on save
    # Early-exit artifacts only (written by the early_exit stage): exits, thresholds, segment
    # folders per format, calibration; deploy code then runs the segments chained.
    early_exit: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    manifest_version: int = MANIFEST_VERSION

    # -- derived ------------------------------------------------------------------------
    def derive(self, kind: Kind | None = None, **changes: Any) -> Manifest:
        """A copy for a child artifact: keeps io/preprocess/model/labels/dataset/lineage,
        drops files, digests, metrics, checks and early_exit (they describe the parent's
        files)."""
        child = dataclasses.replace(
            self, kind=kind or self.kind, files={}, file_digests={}, metrics={}, checks={},
            early_exit={}, lineage=list(self.lineage), created="")
        child = Manifest.from_dict(to_dict(child))  # deep copy
        for key, value in changes.items():
            setattr(child, key, value)
        return child

    def to_dict(self) -> dict[str, Any]:
        data = to_dict(self)
        if not data["early_exit"]:
            del data["early_exit"]  # manifests of other artifacts stay as they were
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return parse(cls, data, source="manifest.json")

    # -- io -------------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Hash the files, stamp the time and write manifest.json (written last on purpose:
        a folder without a manifest is never taken for a finished artifact)."""
        folder = Path(folder)
        self.file_digests = {role: sha256_file(folder / rel) for role, rel in self.files.items()
                             if (folder / rel).is_file()}
        self.created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds")
        path = folder / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        tmp.replace(path)
        return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
