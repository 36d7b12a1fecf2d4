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
        return None
