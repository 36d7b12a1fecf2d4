"""The Predictor interface every backend returns, and loading one from the backend table
(``paddleopt/deploy/backends/table.py``)."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact

from paddleopt.deploy.backends.table import BACKENDS, backend_kinds, default_backend
from paddleopt.deploy.base import Predictor, Variant
from paddleopt.utils.grammar import a_an

__all__ = ["BACKENDS", "Predictor", "Variant", "backend_module", "default_backend",
           "load_predictor", "parse_options"]


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
    checking its files against the manifest's sha256 digests. An early-exit artifact runs
    as chained segments that stop at the first confident exit (``paddleopt.earlyexit``)."""
    if artifact.manifest.early_exit:
        from paddleopt.earlyexit.runner import load_chained

        return load_chained(artifact, backend, options, load_predictor)
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
