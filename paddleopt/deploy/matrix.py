"""Which deployments an artifact can reach: its sibling artifacts, per backend and precision.

A pipeline's work dir holds one folder per stage (``02_export``, ``03_to_onnx``, ...). The
artifacts there that come from the same trained model are the ways to deploy it: the
inference model on Paddle Inference (fp32 and, after PTQ, int8; with and without oneDNN),
the ONNX file on ONNX Runtime, the x86 .nb on Paddle Lite. ``paddleopt bench --matrix``
measures all of them side by side; ``paddleopt bench --backend B --precision P`` picks the one
that fits from any artifact of the work dir.

"Same model" means the first lineage entry (the stage that created the weights, e.g. train)
has the same fingerprint. Artifacts without lineage (a foreign model folder) only match
themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact

BACKEND_KINDS = {"eager": ("checkpoint",), "paddle_inference": ("inference",),
                 "onnxruntime": ("onnx",), "lite": ("lite",)}
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class Deployment:
    """One row group of a matrix: an artifact on a backend with fixed options."""

    name: str  # e.g. "pi-onednn-int8"; the benchmark row's variant
    artifact: Artifact
    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # why this variant is in the table (e.g. the int8-without-oneDNN trap)

    @property
    def precision(self) -> str:
        return self.artifact.manifest.precision


@dataclass
class Skipped:
    artifact: Artifact
    reason: str


def lite_target(artifact: Artifact) -> str | None:
    info = artifact.manifest.checks.get("lite")
    return info.get("target") if isinstance(info, dict) else None


def model_key(artifact: Artifact) -> str:
    """Identity of the trained weights an artifact descends from."""
    lineage = artifact.manifest.lineage
    return f"lineage:{lineage[0].fingerprint}" if lineage else f"path:{artifact.path.resolve()}"


def siblings(artifact: Artifact, extra: list[str | Path] | None = None) -> list[Artifact]:
    """``artifact`` plus the finished artifacts next to it that descend from the same model,
    in folder order, plus ``extra`` paths (taken as given)."""
    from paddleopt.artifact import Artifact as _Artifact
    from paddleopt.artifact.manifest import MANIFEST_NAME

    found: dict[Path, Artifact] = {}
    key = model_key(artifact)
    parent = artifact.path.resolve().parent
    if (artifact.path / MANIFEST_NAME).is_file() and parent.is_dir():
        for folder in sorted(p for p in parent.iterdir() if p.is_dir()
                             and not p.name.startswith(".") and (p / MANIFEST_NAME).is_file()):
            try:
                other = _Artifact.open(folder)
            except UserError:
                continue  # a broken folder is not a deployment; bench of it says why
            if model_key(other) == key:
                found[folder.resolve()] = other
    found.setdefault(artifact.path.resolve(), artifact)
    for path in extra or []:
        other = _Artifact.open(path)
        found.setdefault(other.path.resolve(), other)
    return sorted(found.values(), key=lambda a: str(a.path.resolve()))


def deployments_of(artifact: Artifact, threads: int | None = None,
                   with_native: bool = True) -> tuple[list[Deployment], str | None]:
    """The CPU deployments of one artifact, or (``[]``, why not) when it cannot run here.

    Args:
        threads: CPU threads for Paddle Inference and ONNX Runtime (None: their default,
            all available cores). Paddle Lite's Python binding cannot set threads.
        with_native: also Paddle Inference without oneDNN (the baseline oneDNN is measured
            against; for int8 it shows the fake-quant-in-fp32 trap).
    """
    kind, precision = artifact.kind, artifact.manifest.precision
    base = {"threads": threads} if threads is not None else {}
    if kind == "inference":
        tag = "" if precision == "fp32" else f"-{precision}"
        out = [Deployment(f"pi-onednn{tag}", artifact, "paddle_inference",
                          {**base, "onednn": True})]
        if with_native:
            note = ("oneDNN off: the fake-quant ops run in fp32 (what happens when INT8 is not "
                    "enabled)" if precision == "int8" else "")
            options = {**base, "onednn": False}
            if precision == "int8":
                options["onednn_int8"] = False  # on purpose: the backend refuses it otherwise
            out.append(Deployment(f"pi-native{tag}", artifact, "paddle_inference", options,
                                  note))
        return out, None
    if kind == "onnx":
        tag = "" if precision == "fp32" else f"-{precision}"
        return [Deployment(f"ort{tag}", artifact, "onnxruntime", dict(base))], None
    if kind == "lite":
        target = lite_target(artifact)
        if target != "x86":
            return [], (f"Lite {target or 'unknown-target'} .nb ({precision}): runs on the "
                        f"device only (deploy_lite/), not on this x86 machine")
        if precision != "fp32":
            return [], f"Lite x86 {precision} .nb: paddlelite 2.13rc0 returns garbage for it"
        return [Deployment("lite-x86", artifact, "lite", {})], None
    return [], f"{kind} artifact: not a deployment format (bench it with --backend eager)"


def matrix(artifact: Artifact, extra: list[str | Path] | None = None,
           threads: int | None = None, with_native: bool = True
           ) -> tuple[list[Deployment], list[Skipped]]:
    """Every backend x precision reachable from ``artifact`` (its siblings and ``extra``)."""
    deployments: list[Deployment] = []
    skipped: list[Skipped] = []
    for art in siblings(artifact, extra):
        found, why = deployments_of(art, threads, with_native)
        deployments += found
        if why:
            skipped.append(Skipped(art, why))
    names: dict[str, int] = {}
    for dep in deployments:  # two int8 variants (e.g. two PTQ algos): keep names unique
        names[dep.name] = names.get(dep.name, 0) + 1
        if names[dep.name] > 1:
            dep.name = f"{dep.name}-{dep.artifact.path.name}"
    return deployments, skipped


def select(artifact: Artifact, backend: str | None, precision: str | None,
           extra: list[str | Path] | None = None) -> Artifact:
    """The artifact to run for ``backend`` x ``precision``: ``artifact`` itself when it fits,
    else the sibling that does (e.g. 02_export + onnxruntime -> 03_to_onnx)."""
    from paddleopt.deploy.predictor import default_backend

    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"unknown precision '{precision}'.",
                        f"use one of: {', '.join(PRECISIONS)}.")
    backend = backend or default_backend(artifact.kind)
    if backend not in BACKEND_KINDS:
        raise UserError(f"unknown backend '{backend}'.",
                        f"use one of: {', '.join(BACKEND_KINDS)}.")

    def fits(art: Artifact) -> bool:
        if art.kind not in BACKEND_KINDS[backend]:
            return False
        if precision is not None and art.manifest.precision != precision:
            return False
        return backend != "lite" or lite_target(art) == "x86" or art is artifact

    if fits(artifact):
        return artifact
    candidates = [a for a in siblings(artifact, extra) if fits(a)]
    if candidates:
        return candidates[-1]  # the latest stage: e.g. a fine-tuned export after the first
    have = sorted({f"{b} {a.manifest.precision}" for a in siblings(artifact, extra)
                   for b, kinds in BACKEND_KINDS.items() if a.kind in kinds})
    want = f"{backend}" + (f" {precision}" if precision else "")
    fixes = {"onnxruntime": "add a to_onnx stage", "lite": "add a to_lite stage with target: x86",
             "paddle_inference": "add an export stage", "eager": "bench the train checkpoint"}
    if precision == "int8":
        fixes[backend] = "quantize first (a ptq stage, or paddleopt.compress.ptq), then convert"
    raise UserError(
        f"nothing to run on {want} from '{artifact.path}': neither it nor the artifacts of the "
        f"same model next to it fit (they give: {', '.join(have) or 'nothing'}).",
        f"{fixes[backend]}, or pass the artifact with --artifacts PATH.")
