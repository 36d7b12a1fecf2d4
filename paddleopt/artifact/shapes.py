"""Concrete input shapes for models with dynamic dimensions (per input: min, opt, max).

A model exported with ``[-1, 3, -1, -1]`` inputs does not say which images it will see. Every
measurement that makes inputs (parity, INT8 probes, latency, bench, serve warm-up) uses the
input's ``opt_shape`` (its batch dimension replaced by the batch being measured); ``min`` and
``max`` are the range TensorRT-style engines and the docs quote. Shapes are given as:

- ``[1, 3, 48, 320]`` (or ``"1x3x48x320"``): min = opt = max;
- ``{min: [...], opt: [...], max: [...]}`` (``opt`` required; min/max default to opt);
- taken from the calibration/evaluation data (``shapes_from_arrays``).

Models paddleopt trained keep their old behaviour (text models: sequence length 16) when no
shape is recorded; a model from outside (no training lineage) must state its shapes, and
``require_shapes`` says how.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from paddleopt.artifact.manifest import Manifest, TensorSpec

LEGACY_DYNAMIC_DIM = 16  # what paddleopt's own models were always measured at


def parse_shape(value: Any, where: str) -> list[int]:
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            value = [int(p) for p in parts if p.strip()]
        except ValueError:
            value = None
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
        raise UserError(f"{where}: {value!r} is not a shape of positive integers.",
                        "write it as [1, 3, 224, 224] or 1x3x224x224.")
    return list(value)


def parse_shapes(value: dict[str, Any] | None, where: str = "shapes"
                 ) -> dict[str, dict[str, list[int]]]:
    """``{input: shape | {min, opt, max}}`` -> ``{input: {min, opt, max}}``."""
    out: dict[str, dict[str, list[int]]] = {}
    for name, item in (value or {}).items():
        if isinstance(item, dict):
            unknown = set(item) - {"min", "opt", "max"}
            if unknown or "opt" not in item:
                raise UserError(f"{where}.{name}: give opt (and optionally min, max), got "
                                f"keys {sorted(item)}.",
                                f"e.g. {name}: {{min: [1, 3, 32, 32], opt: [1, 3, 320, 320], "
                                f"max: [1, 3, 1024, 1024]}}")
            opt = parse_shape(item["opt"], f"{where}.{name}.opt")
            lo = parse_shape(item.get("min", opt), f"{where}.{name}.min")
            hi = parse_shape(item.get("max", opt), f"{where}.{name}.max")
        else:
            opt = lo = hi = parse_shape(item, f"{where}.{name}")
        if not len(lo) == len(opt) == len(hi) or \
                any(not a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise UserError(f"{where}.{name}: min {lo} <= opt {opt} <= max {hi} must hold per "
                            f"dimension, with one rank.", "fix the three shapes.")
        out[str(name)] = {"min": lo, "opt": opt, "max": hi}
    return out


def parse_shape_args(args: list[str] | None) -> dict[str, Any]:
    """CLI ``--shape NAME=1x3x48x320`` or ``NAME=MIN:OPT:MAX`` -> ``parse_shapes`` input."""
    out: dict[str, Any] = {}
    for arg in args or []:
        name, sep, text = arg.partition("=")
        if not sep or not name:
            raise UserError(f"--shape {arg!r}: expected NAME=SHAPE.",
                            "e.g. --shape x=1x3x48x320 (or x=1x3x48x96:1x3x48x320:1x3x48x1024 "
                            "for min:opt:max)")
        parts = text.split(":")
        if len(parts) == 3:
            out[name] = {"min": parts[0], "opt": parts[1], "max": parts[2]}
        elif len(parts) == 1:
            out[name] = text
        else:
            raise UserError(f"--shape {arg!r}: give one shape or MIN:OPT:MAX.",
                            "e.g. --shape x=1x3x48x320")
    return out


def apply_shapes(manifest: Manifest, shapes: dict[str, dict[str, list[int]]],
                 where: str = "shapes") -> None:
    """Record ``shapes`` on the manifest's inputs; each must fit the declared shape."""
    by_name = {s.name: s for s in manifest.io.inputs}
    for name, rng in shapes.items():
        spec = by_name.get(name)
        if spec is None:
            raise UserError(f"{where}: the model has no input '{name}'.",
                            f"its inputs are: {', '.join(by_name) or 'none'}.")
        for key in ("min", "opt", "max"):
            shape = rng[key]
            if spec.shape and (len(shape) != len(spec.shape) or any(
                    d not in (-1, s) for d, s in zip(spec.shape, shape))):
                raise UserError(f"{where}.{name}: {key} shape {shape} does not fit the model's "
                                f"input shape {spec.shape} (-1 = any).",
                                "keep the rank and every fixed dimension.")
        spec.min_shape, spec.opt_shape, spec.max_shape = rng["min"], rng["opt"], rng["max"]


def shapes_from_arrays(specs: list[TensorSpec], arrays: list[np.ndarray]
                       ) -> dict[str, dict[str, list[int]]]:
    """Shapes of real data (calibration/evaluation tensors, samples on axis 0): opt = one
    sample with batch 1."""
    out = {}
    for spec, arr in zip(specs, arrays):
        shape = [1, *[int(d) for d in arr.shape[1:]]]
        out[spec.name] = {"min": shape, "opt": shape, "max": shape}
    return out


def needs_shape(spec: TensorSpec) -> bool:
    """A dynamic dimension other than the batch and no recorded shape."""
    return spec.opt_shape is None and any(d == -1 for d in spec.shape[1:])


def is_foreign(manifest: Manifest) -> bool:
    """Made outside paddleopt (wrapped from a plain folder, or a pipeline source)."""
    return manifest.model.get("source") == "foreign"


def require_shapes(manifest: Manifest, what: str = "this model") -> None:
    """Raise, naming each input and the fix, when a foreign model lacks shapes."""
    missing = [s for s in manifest.io.inputs if needs_shape(s)] if is_foreign(manifest) else []
    if not missing:
        return
    listed = ", ".join(f"{s.name} {s.shape}" for s in missing)
    first = missing[0]
    example = "x".join(str(1 if d == -1 and i == 0 else (d if d > 0 else 224))
                       for i, d in enumerate(first.shape))
    raise UserError(
        f"{what} has dynamic input dimensions and no shape to use for them: {listed}.",
        f"give the shape its inputs take: --shape {first.name}={example} on the command line "
        f"(MIN:OPT:MAX for a range), or source: {{shapes: {{{first.name}: [...]}}}} in a "
        f"pipeline config; calibration/evaluation data (.npz) also sets it.")


def dynamic_dim(manifest: Manifest) -> int | None:
    """The value made-up inputs use for dynamic dimensions of inputs without a shape: our
    own models keep the legacy 16; foreign models get none (``make_feeds`` refuses)."""
    return None if is_foreign(manifest) else LEGACY_DYNAMIC_DIM
