"""Plan-time checks the typed schema cannot express on its own.

Everything here is cheap (no Paddle import, no data loaded) and raises a ConfigError naming
the config file, the key and the fix, so that a mistake costs a second at ``plan`` instead of
a crash after training: stage ids and the name that become folder names, the device, the
dataset and its preprocessing, and the model factory's keyword arguments.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from paddleopt.utils.errors import ConfigError

# Stage ids become folder names (NN_<id>) and `-o <id>.key=value` roots.
STAGE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# The pipeline name becomes work_dirs/<name>.
PIPELINE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
IMAGE_DATASETS = ("mnist", "digits", "image_folder", "label_list")


def _where(source: str) -> str:
    return f"{source}: " if source else ""


def check_raw(raw: Any, source: str = "") -> None:
    """Checks on the raw mapping, before typing turns keys like ``1`` or ``null`` into
    strings."""
    if not isinstance(raw, dict):
        return  # the schema reports it
    name = raw.get("name")
    if isinstance(name, str) and (not PIPELINE_NAME.match(name) or name in (".", "..")):
        raise ConfigError(
            f"{_where(source)}invalid config at 'name': {name!r} is not usable as a folder name "
            f"(the work dir is work_dirs/<name>).",
            "set 'name' to letters, digits, '_', '-' or '.', e.g. name: mnist_ptq.")
    stages = raw.get("stages")
    if isinstance(stages, dict):
        for stage_id, body in stages.items():
            if not isinstance(stage_id, str) or not STAGE_ID.match(stage_id):
                raise ConfigError(
                    f"{_where(source)}invalid config at 'stages': stage id {stage_id!r} is not "
                    f"an identifier (stage ids become folder names NN_<id> and -o roots).",
                    "name it with letters, digits and '_' (starting with a letter), e.g. "
                    "'train' or 'ptq_int8'; put the stage type in 'type:'.")
            if isinstance(body, dict) and "input" in body and not isinstance(body["input"], str):
                raise ConfigError(
                    f"{_where(source)}invalid config at 'stages.{stage_id}.input': expected "
                    f"the id of an earlier stage, got {body['input']!r}.",
                    f"write e.g. 'input: {next(iter(stages))}'.")


def check_pipeline(pipeline: Any, source: str = "") -> None:
    """Checks on the typed PipelineConfig: data and model."""
    _check_data(pipeline.data, source)
    check_model_kwargs(pipeline.model.arch, pipeline.model.kwargs, "model", source)


def check_device(device: str, source: str = "") -> None:
    """``device: gpu`` needs the CUDA build of Paddle. Checked after everything else, so
    a GPU config planned on a CPU machine still reports its own mistakes first."""
    if device != "gpu":
        return
    from paddleopt.utils.versions import package_version

    if package_version("paddlepaddle-gpu") is None:
        from paddleopt.deploy.backends.paddle_inference import GPU_INSTALL_FIX

        raise ConfigError(
            f"{_where(source)}invalid config at 'device': gpu needs the CUDA build of Paddle "
            f"(paddlepaddle-gpu), but only the CPU build is installed.", GPU_INSTALL_FIX)


def _check_data(data: Any, source: str) -> None:
    from paddleopt.data.text_datasets import TEXT_DATASETS, check_text_data, is_text_data

    try:
        if is_text_data(data.dataset, data.preprocess):
            check_text_data(data)
            return
        if data.dataset not in IMAGE_DATASETS:
            import difflib

            known = (*IMAGE_DATASETS, *TEXT_DATASETS)
            close = difflib.get_close_matches(data.dataset, known, n=1)
            raise ConfigError(f"unknown data.dataset '{data.dataset}'.",
                              (f"did you mean '{close[0]}'? " if close else "")
                              + f"use one of: {', '.join(known)}.")
        from paddleopt.data.preprocess import image_preprocess

        image_preprocess(data.dataset, data.preprocess)
        if data.dataset == "image_folder":
            if not data.root:
                raise ConfigError("data.dataset is image_folder but data.root is not set.",
                                  "set data.root to a folder with one sub-folder per class.")
            if not Path(data.root).is_dir():
                raise ConfigError(f"data.root '{data.root}' is not a folder.",
                                  "point data.root at a folder holding <class>/*.png.")
        if data.dataset == "label_list" and not (data.root and Path(data.root).is_file()):
            raise ConfigError(f"data.dataset is label_list but data.root '{data.root}' is not "
                              f"a file.", "set data.root to the PaddleClas train_list.txt "
                              "('path label' lines; val_list.txt next to it is the eval split).")
    except ConfigError as exc:
        if source and not exc.message.startswith(source):
            raise ConfigError(f"{source}: {exc.message}", exc.fix) from None
        raise


def check_model_kwargs(arch: str, kwargs: dict[str, Any], where: str = "model",
                       source: str = "") -> None:
    """Refuse ``<where>.kwargs`` keys the factory of ``arch`` has no parameter for (factories
    swallow unknown keywords with ``**_``, so a typo would silently build the default)."""
    import importlib
    import inspect

    from paddleopt.models.registry import ARCHS

    if not kwargs or arch not in ARCHS:
        return  # an unknown arch is reported by the stage that builds it
    module_name, fn_name = ARCHS[arch].split(":")
    factory = getattr(importlib.import_module(module_name), fn_name)
    params = inspect.signature(factory).parameters
    named = [n for n, p in params.items()
             if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    core = {"num_classes", "in_channels", "width_mult"}  # set by model.*, not by kwargs
    for key in kwargs:
        if key in core:
            raise ConfigError(
                f"{_where(source)}invalid config at '{where}.kwargs.{key}': {key} is set by "
                f"'{where}.{key}', not by kwargs.", f"move it to '{where}.{key}'.")
        if key not in named:
            import difflib

            options = [n for n in named if n not in core]
            close = difflib.get_close_matches(str(key), options, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"{_where(source)}invalid config at '{where}.kwargs.{key}': the '{arch}' "
                f"factory ({ARCHS[arch]}) has no parameter '{key}'.",
                f"{hint}its parameters: {', '.join(options) or 'none'}.")
