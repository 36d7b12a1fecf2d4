"""The training loop shared by `train` and every fine-tuning stage.

``fit`` runs epochs with optional AMP, a tqdm bar, per-epoch evaluation and an ``on_epoch_end``
hook (checkpoints). It is distributed-aware: under ``paddle.distributed.launch`` (see
``paddleopt.distributed``) it initialises the parallel environment and wraps the model
(DataParallel, or fleet with ``cfg.fleet.use_fleet``/hybrid degrees) itself, so every stage
that trains through it runs distributed the same way; only rank 0 shows progress. It also does
gradient accumulation (``cfg.fleet.accumulate_steps``) and recompute (``cfg.fleet.recompute``).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np

from paddleopt.engine.config import AmpConfig, TrainConfig
from paddleopt.engine.optim import build_optimizer, build_schedule
from paddleopt.utils.imports import import_paddle

LossFn = Callable[[Any, Any, list], Any]  # (logits, labels, inputs) -> scalar loss tensor


def amp_dtype(cfg: AmpConfig, log: logging.Logger | None = None) -> str | None:
    """The autocast dtype to use, or None when AMP is off or cannot take effect.

    Paddle 2.6 dygraph autocast only acts on CUDA/XPU/custom places: on CPU it warns "makes no
    effect" and runs fp32 (measured on 2.6.2). We say so once and train in fp32 rather than
    pretend; the manifest records ``amp_effective``.
    """
    if not cfg.enabled:
        return None
    paddle = import_paddle()
    on_gpu = paddle.is_compiled_with_cuda() and "gpu" in paddle.get_device()
    if not on_gpu:
        (log or logging.getLogger("paddleopt")).warning(
            "amp.enabled is set, but Paddle %s dygraph AMP has no effect on CPU; training in "
            "fp32 (AMP applies on GPU).", paddle.__version__)
        return None
    return "float16" if cfg.dtype == "auto" else cfg.dtype


def is_rank0() -> bool:
    from paddleopt.distributed.runtime import is_rank0 as rank0

    return rank0()


def evaluate(model: Any, loader: Any, loss_fn: LossFn | None = None) -> dict[str, float]:
    """Accuracy and mean loss over ``loader`` (model switched to eval mode)."""
    paddle = import_paddle()
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with paddle.no_grad():
        for *inputs, labels in loader:
            logits = model(*inputs)
            labels = labels.reshape([-1])
            loss = (loss_fn(logits, labels, inputs) if loss_fn else
                    paddle.nn.functional.cross_entropy(logits, labels))
            loss_sum += float(loss) * len(labels)
            correct += int((logits.argmax(axis=-1) == labels).astype("int64").sum())
            total += len(labels)
    return {"accuracy": correct / max(1, total), "loss": loss_sum / max(1, total),
            "samples": total}


def fit(model: Any, train_loader: Any, eval_loader: Any | None, cfg: TrainConfig,
        log: logging.Logger | None = None, loss_fn: LossFn | None = None,
        on_epoch_end: Callable[[int, dict, Any, Any], None] | None = None,
        start_epoch: int = 0, optimizer_state: dict | None = None,
        after_step: Callable[[int], None] | None = None,
        parameters: list | None = None, rng: dict | None = None) -> dict[str, Any]:
    """Train ``model``; return {"history": [...], "final": eval metrics, "seconds": ...}.

    Loader batches are ``(*inputs, labels)``; the model is called as ``model(*inputs)``.
    ``loss_fn(logits, labels, inputs)`` replaces cross entropy (distillation adds its terms
    there). ``on_epoch_end(epoch, metrics, optimizer, schedule)`` saves checkpoints.
    ``after_step(global_step)`` lets sparsity schedules act after each update.
    Resuming: ``start_epoch`` epochs are done, ``optimizer_state`` (with the LR scheduler's)
    and ``rng`` (``paddleopt.engine.checkpoint.rng_state()`` saved at the end of the last
    epoch) make the following epochs exactly those of an uninterrupted run.
    """
    from paddleopt.distributed import runtime as dist

    paddle = import_paddle()
    log = log or logging.getLogger("paddleopt")
    steps = len(train_loader)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    fleet = getattr(cfg, "fleet", None) or dist.FleetConfig()  # recipes made before `fleet`
    accumulate = fleet.accumulate_steps
    updates = -(-steps // accumulate)  # optimizer steps per epoch (a short last group counts)
    dist.apply_recompute(model, fleet.recompute)
    dist.init(fleet, cfg.amp)
    schedule = build_schedule(cfg.schedule, cfg.optimizer.lr, cfg.epochs, updates)
    optimizer = build_optimizer(cfg.optimizer, parameters or model.parameters(), schedule)
    if optimizer_state:
        optimizer.set_state_dict(optimizer_state)
    dtype = amp_dtype(cfg.amp, log)
    scaler = paddle.amp.GradScaler(init_loss_scaling=cfg.amp.init_loss_scaling) \
        if dtype == "float16" else None
    if dtype and cfg.amp.level == "O2":
        model, optimizer = paddle.amp.decorate(model, optimizer, level="O2", dtype=dtype)
    # Wrap after AMP decoration (Paddle's order): DataParallel / fleet model and optimizer.
    model = dist.wrap_model(model, fleet)
    optimizer = dist.wrap_optimizer(optimizer)
    scaler = dist.wrap_scaler(scaler)

    def default_loss(logits: Any, labels: Any, _inputs: list) -> Any:
        return paddle.nn.functional.cross_entropy(
            logits.astype("float32"), labels, label_smoothing=cfg.label_smoothing)

    loss_of = loss_fn or default_loss
    history: list[dict] = []
    started = time.perf_counter()
    global_step = start_epoch * updates
    sampler = getattr(train_loader, "batch_sampler", None)
    if rng is not None:  # last: nothing above may draw from the restored generators
        from paddleopt.engine.checkpoint import set_rng_state

        set_rng_state(rng)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        if hasattr(sampler, "set_epoch"):  # DistributedBatchSampler: a new shuffle per epoch
            sampler.set_epoch(epoch)
        bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress_bar)
        losses: list[float] = []
        step_times: list[float] = []
        seen = 0
        t0 = time.perf_counter()
        for step, (*inputs, labels) in enumerate(train_loader):
            if step >= steps:
                break
            t_step = time.perf_counter()
            labels = labels.reshape([-1])
            # Micro-batch `step` belongs to the group starting at group_start; the group's
            # losses are averaged, so k micro-batches of B equal one batch of k*B. Only the
            # last micro-batch of a group all-reduces gradients across ranks.
            group_start = step - step % accumulate
            group = min(accumulate, steps - group_start)
            last_in_group = step == group_start + group - 1
            with dist.no_sync(model, not last_in_group):
                with paddle.amp.auto_cast(enable=dtype is not None, dtype=dtype or "float16",
                                          level=cfg.amp.level):
                    logits = model(*inputs)
                    loss = loss_of(logits, labels, inputs)
                scaled = loss / group if group > 1 else loss
                if scaler is not None:
                    scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            if last_in_group:
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.clear_grad()
                if not isinstance(schedule, float):
                    schedule.step()
                global_step += 1
                if after_step is not None:
                    after_step(global_step)
            losses.append(float(loss))
            seen += len(labels)
            step_times.append(time.perf_counter() - t_step)
            if bar is not None and (step % max(1, cfg.log_interval // 5) == 0 or step == steps - 1):
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}",
                                lr=f"{optimizer.get_lr():.2e}")
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t0
        epoch_metrics: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                                         "train_samples_per_s": seen / train_seconds,
                                         "train_samples": seen, "train_seconds": train_seconds,
                                         "step_ms": _percentiles(step_times)}
        if eval_loader is not None and (cfg.eval_each_epoch or epoch == cfg.epochs - 1):
            epoch_metrics.update({f"eval_{k}": v for k, v in evaluate(model, eval_loader).items()})
        history.append(epoch_metrics)
        if is_rank0():
            log.info("epoch %d/%d %s", epoch + 1, cfg.epochs,
                     " ".join(f"{k}={v:.4f}" for k, v in epoch_metrics.items()
                              if isinstance(v, float)))
        if on_epoch_end is not None:
            on_epoch_end(epoch, epoch_metrics, optimizer, schedule)
    final = history[-1] if history else {}
    return {"history": history, "final": final, "seconds": time.perf_counter() - started,
            "amp_effective": dtype is not None, "amp_dtype": dtype}


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = np.asarray(seconds) * 1e3
    return {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled or not is_rank0():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0)


def count_params(model: Any) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


def count_flops(model: Any, input_specs: list) -> int | None:
    """FLOPs (as paddle.flops counts them) for one sample of a single float input; None for
    models with several or integer inputs (text), where paddle.flops cannot drive them."""
    import contextlib
    import io

    if len(input_specs) != 1 or input_specs[0].dtype != "float32":
        return None
    paddle = import_paddle()
    shape = [1 if d == -1 else d for d in input_specs[0].shape]
    with contextlib.redirect_stdout(io.StringIO()):  # paddle.flops prints a line per layer type
        return int(paddle.flops(model, shape, print_detail=False))
