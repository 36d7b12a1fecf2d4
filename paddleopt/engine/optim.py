"""Optimizer and learning-rate schedule from a TrainConfig (schedules step once per batch)."""
from __future__ import annotations

from typing import Any

from paddleopt.engine.config import OptimizerConfig, ScheduleConfig
from paddleopt.utils.imports import import_paddle


def build_schedule(cfg: ScheduleConfig, base_lr: float, epochs: int, steps_per_epoch: int) -> Any:
    paddle = import_paddle()
    lr = paddle.optimizer.lr
    total = max(1, epochs * steps_per_epoch)
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.name == "cosine":
        sched: Any = lr.CosineAnnealingDecay(base_lr, T_max=max(1, total - warmup_steps),
                                             eta_min=cfg.eta_min)
    elif cfg.name == "step":
        sched = lr.StepDecay(base_lr, step_size=max(1, cfg.step_size * steps_per_epoch),
                             gamma=cfg.gamma)
    elif cfg.name == "multistep":
        sched = lr.MultiStepDecay(base_lr, milestones=[m * steps_per_epoch for m in
                                                       cfg.milestones] or [total + 1],
                                  gamma=cfg.gamma)
    else:
        sched = base_lr
    if warmup_steps > 0:
        sched = lr.LinearWarmup(sched, warmup_steps=warmup_steps,
                                start_lr=cfg.warmup_start_lr, end_lr=base_lr)
    return sched


def build_optimizer(cfg: OptimizerConfig, parameters: list, schedule: Any) -> Any:
    paddle = import_paddle()
    opt = paddle.optimizer
    clip = paddle.nn.ClipGradByGlobalNorm(cfg.grad_clip_norm) if cfg.grad_clip_norm else None
    # L2Decay for the classic optimizers; AdamW applies decoupled weight decay itself.
    decay = paddle.regularizer.L2Decay(cfg.weight_decay) if cfg.weight_decay else None
    common = {"learning_rate": schedule, "parameters": parameters, "grad_clip": clip}
    if cfg.name == "sgd":
        return opt.SGD(weight_decay=decay, **common)
    if cfg.name == "momentum":
        return opt.Momentum(momentum=cfg.momentum, use_nesterov=cfg.nesterov,
                            weight_decay=decay, **common)
    if cfg.name == "adagrad":
        return opt.Adagrad(epsilon=cfg.epsilon, weight_decay=decay, **common)
    if cfg.name == "adadelta":
        return opt.Adadelta(epsilon=cfg.epsilon, rho=cfg.rho, weight_decay=decay, **common)
    if cfg.name == "adam":
        return opt.Adam(beta1=cfg.beta1, beta2=cfg.beta2, epsilon=cfg.epsilon,
                        weight_decay=decay, **common)
    if cfg.name == "adamw":
        return opt.AdamW(beta1=cfg.beta1, beta2=cfg.beta2, epsilon=cfg.epsilon,
                         weight_decay=cfg.weight_decay, **common)
    raise AssertionError(cfg.name)  # the schema's Literal makes this unreachable
