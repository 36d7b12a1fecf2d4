"""The one recipe type for distilling an inference model into a compressed copy of itself
(``qat_distill``'s quantized student, ``prune_distill``'s pruned one). Kept free of heavy
imports: stage configs embed it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DistillSettings:
    """How the student is trained to match the fp32 inference model on unlabelled inputs.

    Attributes:
        steps: optimizer steps (batches of the calibration ``batch_size``; the inputs are
            cycled).
        learning_rate: Momentum SGD learning rate (the start of the cosine schedule).
        loss: l2 (default), l1 or soft_label between teacher and student tensors.
        nodes: intermediate tensors matched besides the outputs (program tensor names).
        alpha: weight of the distillation loss.
        engine: static (paddleopt's paddle.static loop: frozen BatchNorm statistics,
            calibrated scales before the first step, logits matched instead of softmax
            outputs; see compress.static_distill) or act (PaddleSlim auto-compression).
        lr_schedule: static engine: cosine (decay to 0 over ``steps``) or constant.
        calib_batches: static engine, quantization: forward passes that set the activation
            scales before training.
    """

    steps: int = 300
    learning_rate: float = 1e-4
    loss: Literal["l2", "l1", "soft_label"] = "l2"
    nodes: list[str] = field(default_factory=list)
    alpha: float = 1.0
    engine: Literal["static", "act"] = "static"
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    calib_batches: int = 8

    def validate(self) -> tuple[str, str] | None:
        if self.steps < 1 or self.learning_rate <= 0 or self.alpha <= 0:
            return ("distill needs steps >= 1, learning_rate > 0 and alpha > 0",
                    "use e.g. steps: 300, learning_rate: 0.0001")
        if self.calib_batches < 1:
            return "distill.calib_batches must be >= 1", "use e.g. calib_batches: 8"
        return None
