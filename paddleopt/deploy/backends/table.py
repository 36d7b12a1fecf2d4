"""The backend table: the only list of deployment backends. Everything else is derived from it.

Adding a backend is one module in this folder plus one row below (see docs/ARCHITECTURE.md).
The CLI's ``--backend`` choices, the config's ``evaluate.targets[].backend`` values, the
default backend of each artifact kind, target resolution at plan time, ``bench --matrix`` and
``load_predictor`` all read this table. It imports nothing but the standard library, so
``import paddleopt`` and the config layer stay light.

A backend module defines (see ``eager.py`` for the smallest one):
    Options: dataclass             its knobs, checked at plan time (unknown keys rejected);
                                   importable without paddle or the backend's own package
    is_available() -> bool; version() -> str | None
    load(artifact, options: Options) -> Predictor
    matrix_variants(artifact, threads, with_native) -> (list[Variant], why_not | None)
                                   optional: its rows in ``bench --matrix`` (default: one row
                                   with default options)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class BackendRow:
    """One backend.

    Attributes:
        module: the module implementing it (imported only when the backend is used).
        kinds: artifact kinds it runs (checkpoint, inference, onnx, lite).
        default_for: kinds for which it is the backend used when none is named; each kind
            has exactly one default (a test checks).
        extra: the optional dependency group it needs (``pip install paddleopt[extra]``).
    """

    module: str
    kinds: tuple[str, ...]
    default_for: tuple[str, ...] = ()
    extra: str | None = None


# Order matters only for listings (CLI help, the matrix's row order).
BACKENDS: dict[str, BackendRow] = {
    "eager": BackendRow("paddleopt.deploy.backends.eager", ("checkpoint",),
                        default_for=("checkpoint",)),
    "paddle_inference": BackendRow("paddleopt.deploy.backends.paddle_inference", ("inference",),
                                   default_for=("inference",)),
    "onnxruntime": BackendRow("paddleopt.deploy.backends.onnxruntime", ("onnx",),
                              default_for=("onnx",), extra="onnx"),
    "lite": BackendRow("paddleopt.deploy.backends.lite", ("lite",), default_for=("lite",),
                       extra="lite"),
    "openvino": BackendRow("paddleopt.deploy.backends.openvino", ("inference", "onnx"),
                           extra="openvino"),
}

BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
# The type of a config field naming a backend (schema.py checks Literal values, did-you-mean).
BackendName = Literal[BACKEND_NAMES]  # type: ignore[valid-type]


def backend_kinds(name: str) -> tuple[str, ...]:
    """The artifact kinds backend ``name`` runs (KeyError for an unknown name)."""
    return BACKENDS[name].kinds


def backends_for(kind: str) -> list[str]:
    """Every backend that runs ``kind``, in table order."""
    return [name for name, row in BACKENDS.items() if kind in row.kinds]


def default_backend(kind: str) -> str:
    """The backend used for a ``kind`` artifact when none is named."""
    for name, row in BACKENDS.items():
        if kind in row.default_for:
            return name
    raise KeyError(f"no default backend for artifact kind '{kind}'")
