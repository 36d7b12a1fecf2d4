"""Joint training of a multi-exit network: weighted cross entropy at every exit, plus optional
self-distillation of the exits from the final head (its softened, detached predictions)."""
from __future__ import annotations

from typing import Any

import numpy as np

from paddleopt.utils.imports import import_paddle


def exit_loss(net: Any, exit_weights: list[float], final_weight: float = 1.0,
              distill_alpha: float = 0.5, temperature: float = 2.0,
              label_smoothing: float = 0.0) -> Any:
    """A ``loss_fn(logits, labels, inputs)`` for ``engine.loop.fit``.

    ``logits`` are the final head's; the exits' come from ``net.exit_logits`` (same call).
    Each exit's term is ``(1 - alpha) * CE + alpha * T^2 * KL(final_T || exit_T)``: the final
    head is the teacher of the shallower ones (self-distillation), at no extra forward cost.
    """
    paddle = import_paddle()
    f = paddle.nn.functional

    def ce(logits: Any, labels: Any) -> Any:
        return f.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    def loss_fn(logits: Any, labels: Any, _inputs: list) -> Any:
        labels = labels.reshape([-1])
        total = final_weight * ce(logits, labels)
        soft = f.softmax(logits.detach() / temperature, axis=-1) if distill_alpha > 0 else None
        for weight, exit_logits in zip(exit_weights, net.exit_logits):
            term = ce(exit_logits, labels)
            if soft is not None:
                log_p = f.log_softmax(exit_logits / temperature, axis=-1)
                kl = f.kl_div(log_p, soft, reduction="batchmean") * temperature ** 2
                term = (1 - distill_alpha) * term + distill_alpha * kl
            total = total + weight * term
        return total

    return loss_fn


def exit_logits(net: Any, feeds: list[np.ndarray], batch_size: int = 500) -> list[np.ndarray]:
    """Every exit's logits and the final head's (last) on numpy inputs, eval mode."""
    paddle = import_paddle()
    net.eval()
    parts: list[list[np.ndarray]] = []
    with paddle.no_grad():
        for i in range(0, len(feeds[0]), batch_size):
            final = net(*[paddle.to_tensor(x[i:i + batch_size]) for x in feeds])
            parts.append([t.numpy() for t in (*net.exit_logits, final)])
    return [np.concatenate(col) for col in zip(*parts)]
