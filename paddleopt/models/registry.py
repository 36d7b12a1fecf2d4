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
    # paddle.vision.models by name (3-channel input; `pretrained: FILE.pdparams` loads
    # weights, e.g. ones saved from PaddleClas; no download happens).
    "resnet18": "paddle.vision.models:resnet18",
    "resnet34": "paddle.vision.models:resnet34",
    "resnet50": "paddle.vision.models:resnet50",
    "mobilenet_v1": "paddle.vision.models:mobilenet_v1",
    "mobilenet_v2": "paddle.vision.models:mobilenet_v2",
    "mobilenet_v3_small": "paddle.vision.models:mobilenet_v3_small",
    "mobilenet_v3_large": "paddle.vision.models:mobilenet_v3_large",
    "shufflenet_v2_x1_0": "paddle.vision.models:shufflenet_v2_x1_0",
}


def model_spec(model_cfg: Any) -> dict[str, Any]:
    """ModelConfig -> the plain spec stored in manifests."""
    spec = {"arch": model_cfg.arch, "num_classes": model_cfg.num_classes,
            "in_channels": model_cfg.in_channels, "width_mult": model_cfg.width_mult,
            "kwargs": dict(model_cfg.kwargs)}
    if getattr(model_cfg, "pretrained", None):
        spec["pretrained"] = model_cfg.pretrained
    return spec


def factory_path(arch: str) -> str:
    """The "module:function" of a registered name, or ``arch`` itself when it is one (a
    user factory: ``model.arch: mypkg.models:build``)."""
    return ARCHS.get(arch, arch)


def check_arch(arch: str) -> None:
    if ":" in arch:
        _factory(arch)  # importable and callable, or a ConfigError now (plan time)
        return
    if arch not in ARCHS:
        import difflib

        close = difflib.get_close_matches(arch, list(ARCHS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown model.arch '{arch}'.", f"{hint}known: {', '.join(ARCHS)}.")


def build_model(spec: dict[str, Any]) -> Any:
    """Build a fresh ``paddle.nn.Layer`` from a spec (arch + factory arguments)."""
    check_arch(spec["arch"])
    factory = _factory(factory_path(spec["arch"]))
    kwargs = _factory_kwargs(factory, spec)
    for key in ("depths", "widths"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    try:
        layer = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model '{spec['arch']}' rejected its arguments: {exc}.",
                          "check model.kwargs against the factory's parameters.") from None
    if spec.get("pretrained"):
        load_pretrained(layer, spec["pretrained"])
    return layer


def _factory(path: str) -> Any:
    module_name, _, fn_name = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), fn_name, None)
    except ImportError as exc:
        raise ConfigError(f"model.arch '{path}': cannot import '{module_name}': {exc}.",
                          "make the module importable (installed, or on PYTHONPATH).") from None
    if not callable(factory):
        raise ConfigError(f"model.arch '{path}': '{module_name}' has no function '{fn_name}'.",
                          "point it at a function that returns a paddle.nn.Layer.")
    return factory


def _factory_kwargs(factory: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Our factories take num_classes/in_channels/width_mult; others (paddle.vision, user
    code) get num_classes when they accept it, the rest only when named in their signature,
    plus model.kwargs."""
    import inspect

    params = inspect.signature(factory).parameters
    open_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    ours = factory.__module__.startswith("paddleopt.")
    kwargs: dict[str, Any] = {}
    for key in ("num_classes", "in_channels", "width_mult"):
        if key in spec and (ours or key in params or (key == "num_classes" and open_kwargs)):
            kwargs[key] = spec[key]
    if not ours and spec.get("in_channels", 3) != 3 and "in_channels" not in params:
        raise ConfigError(f"model.arch '{spec['arch']}' takes 3-channel images, but "
                          f"model.in_channels is {spec['in_channels']}.",
                          "set model.in_channels: 3 and data.preprocess.channels: 3.")
    kwargs.update(spec.get("kwargs") or {})
    return kwargs


def load_pretrained(layer: Any, path: str) -> None:
    """Load a .pdparams into ``layer``; tensors whose shape differs (a classifier head for
    another number of classes) are left freshly initialised, and said so."""
    import logging
    from pathlib import Path

    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    if not Path(path).is_file():
        raise ConfigError(f"model.pretrained: '{path}' does not exist.",
                          "point it at a .pdparams file (paddle.save(layer.state_dict(), ...)).")
    state = paddle.load(path)
    own = layer.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and list(v.shape) == own[k].shape}
    skipped = sorted(set(own) - set(fitting))
    if not fitting:
        raise ConfigError(f"model.pretrained: no tensor of '{path}' fits model.arch (its "
                          f"names/shapes differ).", "use weights saved from the same arch.")
    layer.set_state_dict(fitting)
    if skipped:
        logging.getLogger("paddleopt").info(
            "pretrained %s: %d tensors loaded, %d left initialised (shape or name differs): %s",
            path, len(fitting), len(skipped), ", ".join(skipped[:6]))
