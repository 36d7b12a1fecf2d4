"""Match each evaluation target to the artifact it runs on, and check its options (plan time)."""
from __future__ import annotations

from typing import Any

from paddleopt.config.sections import TargetConfig
from paddleopt.deploy.backends.table import backend_kinds
from paddleopt.utils.errors import ConfigError
from paddleopt.utils.grammar import a_an


def resolve_target(target: TargetConfig, produced: list[tuple[str, str]], source: str = "") -> str:
    """Return the stage id whose artifact ``target`` runs on (validated at plan time)."""
    kinds = backend_kinds(target.backend)
    where = f"{source + ': ' if source else ''}evaluate.targets '{target.name}'"
    if target.artifact is not None:
        match = [kind for sid, kind in produced if sid == target.artifact]
        if not match:
            raise ConfigError(f"{where}: artifact '{target.artifact}' is not a stage id.",
                              f"use one of: {', '.join(s for s, _ in produced)}.")
        if match[0] not in kinds:
            raise ConfigError(f"{where}: backend {target.backend} cannot run the {match[0]} "
                              f"artifact of stage '{target.artifact}'.",
                              f"point it at a stage that produces {'/'.join(kinds)}.")
        return target.artifact
    for sid, kind in reversed(produced):
        if kind in kinds:
            return sid
    raise ConfigError(f"{where}: no stage produces {a_an('/'.join(kinds))} artifact for backend "
                      f"{target.backend}.", "add the stage (e.g. export) or remove the target.")


def check_target_options(target: TargetConfig, index: int, source: str = "") -> Any:
    """``target.options`` parsed by its backend's ``Options`` (no paddle needed): a misspelled
    or out-of-range option fails the plan, naming the key, not the evaluation after training."""
    from paddleopt.deploy.predictor import parse_options

    return parse_options(target.backend, target.options,
                         where=f"evaluate.targets[{index}].options", source=source)
