"""Model factories by name. A checkpoint manifest's ``model`` spec rebuilds the same network."""
from __future__ import annotations

import importlib
from typing import Any

from paddleopt.utils.errors import ConfigError

# arch -> "module:function". Text models are added by the text pipeline.
ARCHS: dict[str, str] = {
    "resnet_small": "paddleopt.models.vision:resnet_small",
    "mobilenet_v2_small": "paddleopt.models.vision:mobilenet_v2_small",
    "lenet": "paddleopt.models.vision:lenet",
    "ernie_cls": "paddleopt.models.text:ernie_cls",
}


def model_spec(model_cfg: Any) -> dict[str, Any]:
    """ModelConfig -> the plain spec stored in manifests."""
    return {"arch": model_cfg.arch, "num_classes": model_cfg.num_classes,
            "in_channels": model_cfg.in_channels, "width_mult": model_cfg.width_mult,
            "kwargs": dict(model_cfg.kwargs)}


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        import difflib

        close = difflib.get_close_matches(arch, list(ARCHS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown model.arch '{arch}'.", f"{hint}known: {', '.join(ARCHS)}.")


def build_model(spec: dict[str, Any]) -> Any:
    """Build a fresh ``paddle.nn.Layer`` from a spec (arch + factory arguments)."""
    check_arch(spec["arch"])
    module_name, fn_name = ARCHS[spec["arch"]].split(":")
    factory = getattr(importlib.import_module(module_name), fn_name)
    kwargs = {k: v for k, v in spec.items() if k not in ("arch", "kwargs")}
    kwargs.update(spec.get("kwargs") or {})
    for key in ("depths", "widths"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model '{spec['arch']}' rejected its arguments: {exc}.",
                          "check model.kwargs against the factory's parameters.") from None
