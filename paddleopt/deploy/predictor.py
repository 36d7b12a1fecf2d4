"""The Predictor interface every backend returns, and the backend table."""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from types import ModuleType
from typing import TYPE_CHECKING, Any

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from paddleopt.artifact import Artifact, TensorSpec

# backend name -> module. Each module defines:
#   KINDS: tuple[str, ...]             artifact kinds it can load
#   EXTRA: str | None                  the optional extra it needs
#   Options: dataclass                 its knobs (unknown keys rejected)
#   is_available() -> bool; version() -> str | None
#   load(artifact: Artifact, options: Options) -> Predictor
BACKENDS: dict[str, str] = {
    "eager": "paddleopt.deploy.backends.eager",
    "paddle_inference": "paddleopt.deploy.backends.paddle_inference",
    "onnxruntime": "paddleopt.deploy.backends.onnxruntime",
    "lite": "paddleopt.deploy.backends.lite",
}


class Predictor(ABC):
    """Runs a model on numpy inputs. One instance is not thread-safe; use ``clone()``."""

    backend: str = ""
    precision: str = "fp32"

    @property
    @abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        """Inputs in manifest order -> outputs in manifest order."""

    def clone(self) -> Predictor:
        """A predictor sharing weights where the backend allows (default: not supported)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be cloned")

    def describe(self) -> dict[str, Any]:
        """What is actually configured (for reports and tests)."""
        return {"backend": self.backend, "precision": self.precision}


def backend_module(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'.", f"use one of: {', '.join(BACKENDS)}.")
    return importlib.import_module(BACKENDS[name])


def parse_options(backend: str, options: dict[str, Any] | None, where: str = "options") -> Any:
    from paddleopt.config.schema import parse

    return parse(backend_module(backend).Options, options or {}, path=where)


def load_predictor(artifact: Artifact, backend: str | None = None,
                   options: dict[str, Any] | Any | None = None) -> Predictor:
    """Load ``artifact`` on ``backend`` (default: the natural one for its kind)."""
    backend = backend or default_backend(artifact.kind)
    module = backend_module(backend)
    if artifact.kind not in module.KINDS:
        raise UserError(
            f"backend '{backend}' cannot run a {artifact.kind} artifact ({artifact.path}); it "
            f"runs {', '.join(module.KINDS)}.",
            f"use --backend {default_backend(artifact.kind)}, or convert the artifact first.")
    if module.EXTRA:
        from paddleopt.utils.imports import require_extra

        require_extra(module.EXTRA, f"backend '{backend}'")
    if not isinstance(options, module.Options):
        options = parse_options(backend, options)
    return module.load(artifact, options)


def default_backend(kind: str) -> str:
    return {"checkpoint": "eager", "inference": "paddle_inference", "onnx": "onnxruntime",
            "lite": "lite"}[kind]
