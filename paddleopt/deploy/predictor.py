"""The Predictor interface every backend returns, and loading one from the backend table
(``paddleopt/deploy/backends/table.py``)."""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from paddleopt.artifact import Artifact, TensorSpec

from paddleopt.deploy.backends.table import BACKENDS, backend_kinds, default_backend
from paddleopt.utils.grammar import a_an

__all__ = ["BACKENDS", "Predictor", "Variant", "backend_module", "default_backend",
           "load_predictor", "parse_options"]


@dataclass
class Variant:
    """One way a backend runs an artifact in ``bench --matrix`` (a backend's
    ``matrix_variants`` returns these)."""

    name: str  # the benchmark row's variant, e.g. "pi-onednn-int8"
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # why this variant is in the table (e.g. the int8-without-oneDNN trap)


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
        import difflib

        close = difflib.get_close_matches(name, list(BACKENDS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"unknown backend '{name}'.",
                        f"{hint}use one of: {', '.join(BACKENDS)}.")
    return importlib.import_module(BACKENDS[name].module)


def parse_options(backend: str, options: dict[str, Any] | None, where: str = "options",
                  source: str = "") -> Any:
    """``options`` as the backend's typed ``Options`` (a ConfigError names the key, with a
    did-you-mean). Needs neither paddle nor the backend's package: used at plan time."""
    from paddleopt.config.schema import parse

    return parse(backend_module(backend).Options, options or {}, path=where, source=source)


def load_predictor(artifact: Artifact, backend: str | None = None,
                   options: dict[str, Any] | Any | None = None) -> Predictor:
    """Load ``artifact`` on ``backend`` (default: the natural one for its kind), after
    checking its files against the manifest's sha256 digests."""
    backend = backend or default_backend(artifact.kind)
    module = backend_module(backend)
    kinds = backend_kinds(backend)
    if artifact.kind not in kinds:
        raise UserError(
            f"backend '{backend}' cannot run {a_an(artifact.kind)} artifact ({artifact.path}); it "
            f"runs {', '.join(kinds)}.",
            f"use --backend {default_backend(artifact.kind)}, or convert the artifact first.")
    extra = BACKENDS[backend].extra
    if extra:
        from paddleopt.utils.imports import require_extra

        require_extra(extra, f"backend '{backend}'")
    if not isinstance(options, module.Options):
        options = parse_options(backend, options)
    artifact.verify()  # every reader: a corrupt, truncated or edited file is refused here
    return module.load(artifact, options)
