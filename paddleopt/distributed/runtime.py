"""Inside one training process: parallel env, model/optimizer wrapping, recompute, rank facts.

``paddleopt.engine.loop.fit`` calls these, so every stage that trains through ``fit`` (train,
and the compression stages that fine-tune) is distributed the same way:

* world size 1: nothing is wrapped (gradient accumulation and recompute still apply);
* data parallel (default): ``init_parallel_env()`` + ``paddle.DataParallel``, gradients are
  averaged over ranks (gloo on CPU, NCCL on GPU; chosen by the launcher's environment);
* ``fleet.use_fleet`` or hybrid degrees: ``fleet.init(is_collective=True, strategy)`` +
  ``fleet.distributed_model`` / ``fleet.distributed_optimizer``.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from paddleopt.distributed.config import FleetConfig, RecomputeConfig
from paddleopt.utils.errors import ConfigError, UserError
from paddleopt.utils.imports import import_paddle


# -- rank facts (cheap: read the launcher's environment before paddle is initialised) ---------
def world_size() -> int:
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)


def rank() -> int:
    return int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)


def is_rank0() -> bool:
    return rank() == 0


# -- plan-time checks ------------------------------------------------------------------------
def check_fleet(cfg: FleetConfig, device: str, where: str) -> None:
    """Refuse combinations this machine or Paddle build cannot run (raised at plan time)."""
    if device != "gpu":
        if cfg.hybrid.model_parallel:
            raise ConfigError(
                f"{where}.fleet.hybrid: mp/pp/sharding degrees > 1 are GPU-only (they shard "
                f"weights/optimizer state over NCCL groups), but device is {device}.",
                "keep mp_degree/pp_degree/sharding_degree at 1 on CPU (data parallel works "
                "with gloo), or set device: gpu on a GPU cluster.")
        if cfg.backend == "nccl":
            raise ConfigError(f"{where}.fleet.backend: nccl needs GPUs, but device is {device}.",
                              "use backend: auto (gloo on CPU).")
        if cfg.devices:
            raise ConfigError(f"{where}.fleet.devices selects GPUs, but device is {device}.",
                              "remove fleet.devices (CPU ranks are processes: use nproc).")
    if cfg.hybrid.pp_degree > 1 or cfg.hybrid.mp_degree > 1:
        # Built-in models are plain Layers: mp/pp would replicate them, not split them.
        raise ConfigError(
            f"{where}.fleet.hybrid: mp_degree/pp_degree > 1 need a model written with fleet's "
            f"meta-parallel layers (ColumnParallelLinear, PipelineLayer); the built-in "
            f"architectures are plain paddle.nn.Layer models.",
            "use dp_degree/sharding_degree with built-in models; pass your own fleet model "
            "through paddleopt.engine.loop.fit from Python for tensor/pipeline parallelism.")


# -- strategy ---------------------------------------------------------------------------------
def strategy_dict(cfg: FleetConfig, amp: Any = None) -> dict[str, Any]:
    """What goes into ``fleet.DistributedStrategy`` (also recorded in the manifest)."""
    hybrid = {"dp_degree": cfg.hybrid.dp_degree, "mp_degree": cfg.hybrid.mp_degree,
              "pp_degree": cfg.hybrid.pp_degree, "sharding_degree": cfg.hybrid.sharding_degree}
    if hybrid["dp_degree"] == -1:
        hybrid["dp_degree"] = max(1, world_size() // (cfg.hybrid.mp_degree * cfg.hybrid.pp_degree
                                                       * cfg.hybrid.sharding_degree))
    out: dict[str, Any] = {"hybrid_configs": hybrid,
                           "find_unused_parameters": cfg.find_unused_parameters}
    if amp is not None and getattr(amp, "enabled", False):
        out["amp"] = True
        out["amp_configs"] = {"init_loss_scaling": float(amp.init_loss_scaling),
                              "use_pure_fp16": amp.level == "O2"}
    if cfg.recompute.enabled:
        out["recompute"] = True
        out["recompute_configs"] = {"checkpoints": list(cfg.recompute.layers)}
    if cfg.accumulate_steps > 1:
        # Recorded for readers; dygraph fleet ignores gradient_merge, fit() accumulates itself.
        out["gradient_merge_configs"] = {"k_steps": cfg.accumulate_steps, "avg": True}
    return out


def build_strategy(cfg: FleetConfig, amp: Any = None) -> Any:
    """A ``fleet.DistributedStrategy`` from the config (see ``paddleopt.distributed.compat``)."""
    from paddleopt.distributed.compat import fleet_strategy_usable

    if not fleet_strategy_usable():
        raise UserError(
            "fleet.DistributedStrategy cannot be configured in this process: Paddle 2.6.2 reads "
            "protobuf's removed FieldDescriptor.label and the C protobuf cannot be patched.",
            "run through the launcher (paddleopt train --nproc N), which selects the Python "
            "protobuf for fleet runs, or set PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.")
    paddle = import_paddle()
    values = strategy_dict(cfg, amp)
    strategy = paddle.distributed.fleet.DistributedStrategy()
    strategy.hybrid_configs = values["hybrid_configs"]
    strategy.find_unused_parameters = values["find_unused_parameters"]
    if values.get("amp"):
        strategy.amp = True
        strategy.amp_configs = values["amp_configs"]
    if values.get("recompute"):
        strategy.recompute = True
        strategy.recompute_configs = values["recompute_configs"]
    return strategy


# -- runtime ----------------------------------------------------------------------------------
_STATE: dict[str, Any] = {"initialized": False, "fleet": False}


def init(cfg: FleetConfig, amp: Any = None) -> None:
    """Initialise the collective environment once per process (no-op for one process)."""
    if world_size() <= 1 or _STATE["initialized"]:
        return
    paddle = import_paddle()
    if cfg.fleet_runtime:
        paddle.distributed.fleet.init(is_collective=True, strategy=build_strategy(cfg, amp))
        _STATE["fleet"] = True
    else:
        paddle.distributed.init_parallel_env()
    _STATE["initialized"] = True


def wrap_model(model: Any, cfg: FleetConfig) -> Any:
    """DataParallel / fleet model for more than one rank; the model itself otherwise."""
    if world_size() <= 1 or is_wrapped(model):
        return model
    paddle = import_paddle()
    if _STATE["fleet"]:
        return paddle.distributed.fleet.distributed_model(model)
    return paddle.DataParallel(model, find_unused_parameters=cfg.find_unused_parameters)


def wrap_optimizer(optimizer: Any) -> Any:
    if world_size() <= 1 or not _STATE["fleet"]:
        return optimizer
    return import_paddle().distributed.fleet.distributed_optimizer(optimizer)


def wrap_scaler(scaler: Any) -> Any:
    if scaler is None or world_size() <= 1 or not _STATE["fleet"]:
        return scaler
    return import_paddle().distributed.fleet.distributed_scaler(scaler)


def is_wrapped(model: Any) -> bool:
    """Already a DataParallel or a fleet meta-parallel wrapper (those keep ``_layers``)."""
    paddle = import_paddle()
    if isinstance(model, paddle.DataParallel):
        return True
    try:
        from paddle.distributed.fleet.meta_parallel.meta_parallel_base import MetaParallelBase
    except ImportError:  # layout differs in other Paddle versions
        return False
    return isinstance(model, MetaParallelBase)


def unwrap(model: Any) -> Any:
    return getattr(model, "_layers", model)


@contextlib.contextmanager
def no_sync(model: Any, skip_allreduce: bool) -> Iterator[None]:
    """Skip the gradient all-reduce for a micro-batch whose gradients are accumulated."""
    if skip_allreduce and hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    else:
        yield


def apply_recompute(model: Any, cfg: RecomputeConfig) -> list[str]:
    """Wrap the forward of the named sublayers with fleet recompute (training mode only).

    On CPU the RNG state cannot be preserved (Paddle raises "Recompute with RNG perserve is not
    support current device: cpu"), so there dropout inside a recomputed block draws new masks
    in the re-run; blocks without randomness give identical gradients.
    """
    if not cfg.enabled:
        return []
    paddle = import_paddle()
    from paddle.distributed.fleet.utils import recompute

    layers = dict(unwrap(model).named_sublayers())
    missing = [n for n in cfg.layers if n not in layers]
    if missing:
        raise UserError(f"fleet.recompute.layers: no sublayer named {missing}.",
                        f"use names from model.named_sublayers(), e.g. "
                        f"{', '.join(list(layers)[:6])}.")
    preserve = "gpu" in paddle.get_device()
    _quiet_recompute_warning()
    for name in cfg.layers:
        layer = layers[name]
        if getattr(layer, "_paddleopt_recompute", False):
            continue
        original = layer.forward

        def forward(*args: Any, _orig: Any = original, _layer: Any = layer, **kwargs: Any) -> Any:
            if not _layer.training:
                return _orig(*args, **kwargs)
            return recompute(_orig, *args, use_reentrant=False, preserve_rng_state=preserve,
                             **kwargs)

        layer.forward = forward
        layer._paddleopt_recompute = True
    return list(cfg.layers)


def _quiet_recompute_warning() -> None:
    """Recompute warns on every step when a block's inputs need no grad ("NO need to
    recompute"); that is wrong for the non-reentrant mode we use, which still gives the block's
    parameters their gradients (checked on 2.6.2), so drop that one message."""
    import logging

    from paddle.distributed.fleet.recompute import recompute as module

    logger = getattr(module, "logger", None)
    if logger is None or any(getattr(f, "_paddleopt", False) for f in logger.filters):
        return

    class _Filter(logging.Filter):
        _paddleopt = True

        def filter(self, record: logging.LogRecord) -> bool:
            return "NO need to recompute" not in record.getMessage()

    logger.addFilter(_Filter())


def all_gather_object(value: Any) -> list[Any]:
    """Every rank's ``value`` (a list with one entry for a single process)."""
    if world_size() <= 1:
        return [value]
    paddle = import_paddle()
    out: list[Any] = []
    paddle.distributed.all_gather_object(out, value)
    return out
