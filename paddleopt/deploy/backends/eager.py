"""The dygraph model itself, as the baseline every deployment is compared with."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from paddleopt.artifact import Artifact, TensorSpec
from paddleopt.deploy.predictor import Predictor, Variant


@dataclass
class Options:
    """Eager mode has no deployment knobs: it is the reference, run as training code runs it.
    (Its CPU threads follow OMP_NUM_THREADS, which must be set before paddle is imported.)"""


def is_available() -> bool:
    return True


def version() -> str | None:
    from paddleopt.utils.versions import package_version

    return package_version("paddlepaddle") or package_version("paddlepaddle-gpu")


class EagerPredictor(Predictor):
    backend = "eager"

    def __init__(self, artifact: Artifact, model: Any) -> None:
        self.artifact = artifact
        self.model = model
        self.precision = artifact.manifest.precision

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.artifact.manifest.io.inputs

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        from paddleopt.utils.imports import import_paddle

        paddle = import_paddle()
        with paddle.no_grad():
            out = self.model(*[paddle.to_tensor(f) for f in feeds])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.numpy() for o in outs]

    def clone(self) -> Predictor:
        return self  # eval-mode dygraph forward keeps no per-call state

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "mode": "dygraph"}


def matrix_variants(artifact: Artifact, threads: int | None, with_native: bool
                    ) -> tuple[list[Variant], str | None]:
    """Not in ``bench --matrix``: training code, not a deployment format."""
    return [], f"{artifact.kind} artifact: not a deployment format (bench it with --backend eager)"


def load(artifact: Artifact, options: Options) -> Predictor:
    from paddleopt.models.loading import load_checkpoint_model

    return EagerPredictor(artifact, load_checkpoint_model(artifact))  # eval mode, pruned ok
