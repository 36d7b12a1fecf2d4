"""Which deployments an artifact can reach: its sibling artifacts, per backend and precision.

A pipeline's work dir holds one folder per stage (``02_export``, ``03_to_onnx``, ...). The
artifacts there that come from the same trained model are the ways to deploy it: the
inference model on Paddle Inference (fp32 and, after PTQ, int8; with and without oneDNN),
the ONNX file on ONNX Runtime, the x86 .nb on Paddle Lite. ``paddleopt bench --matrix``
measures all of them side by side; ``paddleopt bench --backend B --precision P`` picks the one
that fits from any artifact of the work dir.

"Same model": ``paddleopt.artifact.workdir.siblings`` (the first lineage entry, the stage
that created the weights, has the same fingerprint; a foreign model folder only matches
itself).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddleopt.artifact.workdir import siblings
from paddleopt.deploy.backends.table import BACKENDS, backend_kinds, backends_for
from paddleopt.utils.errors import UserError
from paddleopt.utils.grammar import a_an

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact

PRECISIONS = ("fp32", "fp16", "int8")
# How to get an artifact of each kind (the fix when a backend has nothing to run).
KIND_FIXES = {"checkpoint": "bench the train checkpoint", "inference": "add an export stage",
              "onnx": "add a to_onnx stage", "lite": "add a to_lite stage with target: x86"}


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


def deployments_of(artifact: Artifact, threads: int | None = None,
                   with_native: bool = True) -> tuple[list[Deployment], str | None]:
    """The CPU deployments of one artifact, or (``[]``, why not) when it cannot run here:
    each backend of the table that runs its kind says which variants it measures
    (its module's ``matrix_variants``).

    Args:
        threads: CPU threads for the backends that take them (None: their default, all
            available cores). Paddle Lite's Python binding cannot set threads.
        with_native: also Paddle Inference without oneDNN (the baseline oneDNN is measured
            against; for int8 it shows the fake-quant-in-fp32 trap).
    """
    out: list[Deployment] = []
    reasons: list[str] = []
    for backend in backends_for(artifact.kind):
        variants, why = _variants(backend, artifact, threads, with_native)
        out += [Deployment(v.name, artifact, backend, v.options, v.note) for v in variants]
        if why:
            reasons.append(why)
    return out, (None if out else "; ".join(reasons) or f"no backend runs {artifact.kind}")


def _variants(backend: str, artifact: Artifact, threads: int | None, with_native: bool
              ) -> tuple[list[Any], str | None]:
    from paddleopt.deploy.predictor import Variant, backend_module

    module = backend_module(backend)
    hook = getattr(module, "matrix_variants", None)
    if hook is None:  # a backend without opinions: one row, default options
        return [Variant(f"{backend}-{artifact.manifest.precision}")], None
    return hook(artifact, threads, with_native)


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
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'.",
                        f"use one of: {', '.join(BACKENDS)}.")

    def fits(art: Artifact) -> bool:
        if art.kind not in backend_kinds(backend):
            return False
        if precision is not None and art.manifest.precision != precision:
            return False
        # a sibling must run here (an ARM .nb does not); the artifact asked for is tried as is
        return art is artifact or bool(_variants(backend, art, None, False)[0])

    if fits(artifact):
        return artifact
    candidates = [a for a in siblings(artifact, extra) if fits(a)]
    if candidates:
        return candidates[-1]  # the latest stage: e.g. a fine-tuned export after the first
    have = sorted({f"{b} {a.manifest.precision}" for a in siblings(artifact, extra)
                   for b in backends_for(a.kind)})
    want = f"{backend}" + (f" {precision}" if precision else "")
    fix = " or ".join(dict.fromkeys(KIND_FIXES.get(k, f"produce {a_an(k)} artifact")
                                    for k in backend_kinds(backend)))
    if precision == "int8":
        fix = "quantize first (a ptq stage, or paddleopt.compress.ptq), then convert"
    elif precision == "fp16":  # no artifact is fp16 on CPU: it is a backend option
        fix = ("fp16 is a runtime precision here, not an artifact: bench the fp32 artifact "
               "with --option precision=fp16 (Paddle Inference on a GPU, OpenVINO), or add "
               "a to_lite stage with fp16: true for ARM devices")
    raise UserError(
        f"nothing to run on {want} from '{artifact.path}': neither it nor the artifacts of the "
        f"same model next to it fit (they give: {', '.join(have) or 'nothing'}).",
        f"{fix}, or pass the artifact with --artifacts PATH.")
