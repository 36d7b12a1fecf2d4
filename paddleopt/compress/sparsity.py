"""Unstructured magnitude sparsity during fine-tuning, with PaddleSlim's dygraph pruners.

``UnstructuredPruner`` keeps a 0/1 mask per parameter (a layer buffer) and multiplies every
weight by its mask in a forward pre-hook; ``step()`` re-computes the magnitude threshold and
the masks. ``GMPUnstructuredPruner`` raises the ratio gradually (cubic schedule: stable,
pruning, tuning phases). Biases and normalisation parameters are never sparsified.

Zeros alone do not make a dense Paddle Inference model faster; the value is a smaller
compressed file and kernels that exploit sparsity elsewhere. Use ``prune`` for speed on CPU.

Training loops: pass ``Sparsifier.after_step`` to ``paddleopt.engine.loop.fit(after_step=)``
(one step per optimizer update, right under gradient accumulation), call ``step()`` after each
optimizer step in your own loop, or ``attach()`` it so that every training-mode forward steps
it (for loops without a callback). Call ``finalize()`` before export: it bakes the zeros into
the weights and removes the hooks and mask buffers, which would otherwise be traced into the
exported program as extra multiplications.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from paddleopt.compress._common import check_fraction, quiet_paddleslim
from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle

Schedule = Literal["constant", "gmp"]

# Normalisation layers: their parameters are scales, not weights (PaddleSlim's NORMS_ALL).
_NORM_LAYERS = ("BatchNorm", "GroupNorm", "LayerNorm", "SpectralNorm", "BatchNorm1D",
                "BatchNorm2D", "BatchNorm3D", "InstanceNorm1D", "InstanceNorm2D",
                "InstanceNorm3D", "SyncBatchNorm", "LocalResponseNorm")


@dataclass
class GMPPhases:
    """Fractions of the total training steps spent in each GMP phase (they sum to <= 1).

    PaddleSlim changes the ratio only every ``pruning_iterations / pruning_steps`` steps, so
    phases shorter than one such period (a few % of a short run) round away.
    """

    stable: float = 0.0  # keep dense
    pruning: float = 0.7  # ratio rises from initial_ratio to the target
    initial_ratio: float = 0.0
    pruning_steps: int = 10  # how many times the ratio is raised


class Sparsifier:
    """Drive magnitude sparsity of ``model`` to ``ratio`` while it fine-tunes.

    Args:
        model: the Layer to sparsify (in place).
        ratio: fraction of prunable weights set to zero, in [0, 1).
        schedule: ``constant`` prunes to ``ratio`` at the first step; ``gmp`` ramps it up.
        total_steps: optimizer steps of the fine-tuning (needed by ``gmp``).
        local: every weight matrix gets ``ratio`` (True) instead of one global threshold.
        conv1x1_only: only 1x1 conv weights (what sparse inference kernels accelerate).
        gmp: the GMP phases.
    """

    def __init__(self, model: Any, ratio: float, *, schedule: Schedule = "constant",
                 total_steps: int | None = None, local: bool = False,
                 conv1x1_only: bool = False, gmp: GMPPhases | None = None) -> None:
        import_paddle()
        from paddleslim.dygraph.prune.unstructured_pruner import (
            GMPUnstructuredPruner,
            UnstructuredPruner,
        )

        check_fraction(ratio, "ratio", example="0.75")
        self.model = model
        self.ratio = ratio
        self.schedule = schedule
        self._hook = None
        prune_type = "conv1x1_only" if conv1x1_only else None
        with quiet_paddleslim():  # it prints one line per parameter
            if schedule == "constant":
                self.pruner = UnstructuredPruner(model, "ratio", ratio=ratio,
                                                 prune_params_type=prune_type,
                                                 local_sparsity=local)
            elif schedule == "gmp":
                self.pruner = GMPUnstructuredPruner(
                    model, ratio=ratio, prune_params_type=prune_type, local_sparsity=local,
                    configs=_gmp_configs(total_steps, gmp or GMPPhases()))
            else:
                raise UserError(f"unknown sparsity schedule '{schedule}'.",
                                "use constant or gmp.")

    @property
    def current_ratio(self) -> float:
        """The ratio the masks currently aim at (GMP: rises over time)."""
        return float(self.pruner.ratio)

    def step(self) -> None:
        """Update threshold and masks; call once per optimizer step."""
        self.pruner.step()

    def after_step(self, global_step: int = 0) -> None:
        """``fit(after_step=...)`` callback: one pruner step per optimizer update."""
        self.pruner.step()

    def attach(self) -> Sparsifier:
        """Step automatically at the start of every training-mode forward of the model.

        Stepping before a forward is equivalent to stepping after the previous optimizer
        update, and the per-layer pre-hooks (registered by PaddleSlim) then apply the fresh
        masks in the same forward. Evaluation forwards (``model.eval()``) do not step.
        """
        if self._hook is None:
            def pre_hook(layer: Any, inputs: Any) -> None:
                if layer.training:
                    self.pruner.step()

            self._hook = self.model.register_forward_pre_hook(pre_hook)
        return self

    def detach(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def finalize(self) -> dict[str, Any]:
        """Bake the masks into the weights, remove every hook and mask buffer; return sparsity.

        The model is an ordinary Layer afterwards (its zeros stay until it is trained again).
        """
        self.detach()
        if self.schedule == "gmp" or self.pruner.ratio != self.ratio:
            # A short run may end before GMP reached the target: jump there so the result is
            # what was asked for, then report it.
            self.pruner.ratio = self.ratio
        self.pruner.update_threshold()
        self.pruner._update_masks()
        self.pruner.update_params()
        hook = self.pruner._forward_pre_hook
        mask_buffers = {id(m) for m in self.pruner.masks.values()}
        for _, layer in self.model.named_sublayers(include_self=True):
            for key in [k for k, h in layer._forward_pre_hooks.items() if h == hook]:
                del layer._forward_pre_hooks[key]
            for key in [k for k, b in layer._buffers.items() if id(b) in mask_buffers]:
                del layer._buffers[key]
                layer._non_persistable_buffer_names_set.discard(key)
        return measure_sparsity(self.model)


def _gmp_configs(total_steps: int | None, phases: GMPPhases) -> dict[str, Any]:
    if not total_steps or total_steps < 1:
        raise UserError("the gmp sparsity schedule needs total_steps (optimizer steps of the "
                        "fine-tuning).", "pass total_steps, or use schedule: constant")
    if phases.stable < 0 or phases.pruning <= 0 or phases.stable + phases.pruning > 1:
        raise UserError(f"gmp phases must satisfy stable >= 0, pruning > 0, stable + pruning "
                        f"<= 1; got stable={phases.stable}, pruning={phases.pruning}.",
                        "use e.g. stable: 0.0, pruning: 0.7")
    check_fraction(phases.initial_ratio, "initial_ratio", example="0.0")
    stable = int(total_steps * phases.stable)
    pruning = int(total_steps * phases.pruning)
    # PaddleSlim asserts pruning_iterations / pruning_steps > 10 (each raise of the ratio
    # needs time to recover); shrink the number of raises for short runs.
    steps = min(phases.pruning_steps, (pruning - 1) // 10)
    if steps < 1:
        raise UserError(f"gmp needs at least 11 pruning-phase steps; {total_steps} total steps "
                        f"x pruning {phases.pruning} gives {pruning}.",
                        "train longer, raise pruning, or use schedule: constant")
    return {"stable_iterations": stable, "pruning_iterations": pruning,
            "tunning_iterations": max(0, total_steps - stable - pruning),
            "resume_iteration": 0, "pruning_steps": steps,
            "initial_ratio": phases.initial_ratio}


def measure_sparsity(model: Any) -> dict[str, Any]:
    """Fraction of exact zeros: over prunable weights (ndim > 1, not normalisation), overall,
    and per prunable weight (structured names)."""
    import numpy as np

    per_param: dict[str, float] = {}
    zeros = total = all_zeros = all_total = 0
    for layer_name, layer in model.named_sublayers(include_self=True):
        is_norm = type(layer).__name__ in _NORM_LAYERS
        for pname, p in layer.named_parameters(include_sublayers=False):
            a = p.numpy()
            z = int(a.size - np.count_nonzero(a))
            all_zeros += z
            all_total += a.size
            if is_norm or a.ndim < 2:
                continue
            zeros += z
            total += a.size
            per_param[f"{layer_name}.{pname}" if layer_name else pname] = round(z / a.size, 6)
    return {"sparsity": zeros / total if total else 0.0,
            "overall_sparsity": all_zeros / all_total if all_total else 0.0,
            "prunable_params": total, "per_param": per_param}
