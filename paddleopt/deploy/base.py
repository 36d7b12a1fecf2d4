"""The Predictor interface every backend returns (re-exported by ``deploy.predictor``), in a
module of its own so that predictors built from other predictors (the early-exit chain) can
subclass it without importing the loader."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from paddleopt.artifact import TensorSpec


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
