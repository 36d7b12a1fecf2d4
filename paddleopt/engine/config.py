"""Training recipe shared by `train` and every stage that fine-tunes (prune, distill, qat...)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from paddleopt.distributed.config import FleetConfig

OptimizerName = Literal["sgd", "momentum", "adagrad", "adadelta", "adam", "adamw"]


@dataclass
class OptimizerConfig:
    name: OptimizerName = "momentum"
    lr: float = 0.05
    momentum: float = 0.9  # momentum
    weight_decay: float = 0.0  # L2 for sgd/momentum/adagrad/adadelta/adam; decoupled for adamw
    beta1: float = 0.9  # adam/adamw
    beta2: float = 0.999
    epsilon: float = 1e-8  # adam/adamw/adagrad/adadelta
    rho: float = 0.95  # adadelta
    nesterov: bool = False
    grad_clip_norm: float | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.lr <= 0:
            return "optimizer.lr must be > 0", "use e.g. lr: 0.01"
        if not 0 <= self.momentum < 1:
            return "optimizer.momentum must be in [0, 1)", "use e.g. momentum: 0.9"
        if self.weight_decay < 0:
            return "optimizer.weight_decay must be >= 0", "use e.g. weight_decay: 1.0e-4, or 0"
        if self.epsilon <= 0:
            return "optimizer.epsilon must be > 0", "use e.g. epsilon: 1.0e-8"
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and 0 < self.rho < 1):
            return "optimizer.beta1/beta2 must be in [0, 1) and rho in (0, 1)", \
                "use e.g. beta1: 0.9, beta2: 0.999, rho: 0.95"
        if self.grad_clip_norm is not None and self.grad_clip_norm <= 0:
            return "optimizer.grad_clip_norm must be > 0 or null", \
                "use e.g. grad_clip_norm: 1.0, or null for no clipping"
        return None


@dataclass
class ScheduleConfig:
    name: Literal["constant", "cosine", "step", "multistep"] = "cosine"
    warmup_epochs: float = 0.0  # linear warm-up from warmup_start_lr to lr
    warmup_start_lr: float = 0.0
    step_size: int = 1  # step: epochs per decay
    milestones: list[int] = field(default_factory=list)  # multistep: epochs
    gamma: float = 0.1
    eta_min: float = 0.0  # cosine floor

    def validate(self) -> tuple[str, str] | None:
        if self.warmup_epochs < 0 or self.warmup_start_lr < 0:
            return "schedule.warmup_epochs and warmup_start_lr must be >= 0", \
                "use e.g. warmup_epochs: 1, or 0 for no warm-up"
        if self.step_size < 1:
            return "schedule.step_size must be >= 1 (epochs per decay)", "use e.g. step_size: 10"
        if self.gamma <= 0:
            return "schedule.gamma must be > 0 (the decay factor)", "use e.g. gamma: 0.1"
        if self.eta_min < 0:
            return "schedule.eta_min must be >= 0", "use e.g. eta_min: 0"
        if any(m < 1 for m in self.milestones) or self.milestones != sorted(self.milestones):
            return "schedule.milestones must be increasing epochs >= 1", \
                "use e.g. milestones: [30, 60]"
        return None


@dataclass
class AmpConfig:
    """Automatic mixed precision: fp16 on GPU (bf16 on request). Paddle 2.6 dygraph AMP has no
    effect on CPU, so there the switch is reported as not effective and training stays fp32."""

    enabled: bool = False
    dtype: Literal["auto", "float16", "bfloat16"] = "auto"  # auto: fp16 on GPU, bf16 on CPU
    level: Literal["O1", "O2"] = "O1"
    init_loss_scaling: float = 1024.0  # fp16 only


@dataclass
class TrainConfig:
    epochs: int = 1
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    amp: AmpConfig = field(default_factory=AmpConfig)
    label_smoothing: float = 0.0
    log_interval: int = 50  # steps between log lines / progress-bar refreshes
    eval_each_epoch: bool = True
    max_steps_per_epoch: int | None = None  # cap (for smoke runs)
    progress_bar: bool = True
    fleet: FleetConfig = field(default_factory=FleetConfig)  # processes, accumulation, strategy

    def validate(self) -> tuple[str, str] | None:
        if self.epochs < 1:
            return "epochs must be >= 1", "use e.g. epochs: 3"
        if not 0 <= self.label_smoothing < 1:
            return "label_smoothing must be in [0, 1)", "use e.g. 0.1"
        if self.log_interval < 1:
            return "log_interval must be >= 1", "use e.g. log_interval: 50"
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            return "max_steps_per_epoch must be >= 1 or null", "use null for whole epochs"
        return None
