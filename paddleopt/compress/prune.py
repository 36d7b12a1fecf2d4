"""Structured filter pruning with PaddleSlim's dygraph filter pruners.

Pruning removes whole output filters of ``Conv2D`` layers and the matching input channels of
whatever consumes them (BatchNorm, the next conv or Linear). PaddleSlim really resizes the
parameter tensors (``PruningPlan.imperative_apply``), so a model exported afterwards has smaller
weights and fewer FLOPs; this is not masking. We then drop PaddleSlim's full-size backup
buffers and update the layers' channel attributes so the Layer is self-consistent.

Two ways to say how much to prune:

- ``ratios``: ``{param: ratio}`` per conv weight (structured name like ``conv1.weight`` or
  Paddle's unique name like ``conv2d_0.w_0``), ratio in [0, 1) of filters removed;
- ``flops_reduction``: a target fraction of FLOPs to remove, spread over layers either by a
  sensitivity analysis (``spread="sensitivity"``; needs ``eval_fn``) or uniformly.

Verified on paddle 2.6.2 / paddleslim 2.6.0: ``FilterPruner.sensitive`` +
``sensitive_prune`` work, with three quirks handled here: ``sensitive`` crashes without a
``sen_file`` (it pickles after every step), the ``skip_vars=[]`` defaults are mutable and grow
between calls, and the bisection in ``get_ratios_by_sensitivity`` stops when the FLOPs it
reaches repeat, so the result can miss the target (by ~0.03 on small nets, more when the
sensitivities are flat). When it misses by more than ``tolerance`` we fall back to the uniform
spread and say so in the report. Its pickle cache is keyed by unique parameter names
(``conv2d_3.w_0``) that depend on how many layers the process built before, so we keep our
own JSON cache keyed by structured names (``conv1.weight``).
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from paddleopt.compress._common import check_fraction, count_params, quiet_paddleslim
from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle

Criterion = Literal["l1", "l2", "fpgm"]
CRITERIA: dict[str, str] = {
    "l1": "L1NormFilterPruner",
    "l2": "L2NormFilterPruner",
    "fpgm": "FPGMFilterPruner",
}
InputShapes = Sequence[int] | Sequence[Sequence[int]]

_log = logging.getLogger("paddleopt.compress.prune")


@dataclass
class PruneReport:
    """What pruning did. Ratios and shapes are keyed by structured parameter names."""

    criterion: str
    mode: str  # "ratios" | "flops:sensitivity" | "flops:uniform"
    flops_before: int
    flops_after: int
    params_before: int
    params_after: int
    ratios: dict[str, float]  # conv weight -> fraction of its filters removed
    shapes: dict[str, list[int]] = field(default_factory=dict)  # every resized param
    target_flops_reduction: float | None = None
    sensitivities: dict[str, dict[float, float]] | None = None
    note: str = ""

    @property
    def flops_reduction(self) -> float:
        return 1.0 - self.flops_after / self.flops_before if self.flops_before else 0.0

    @property
    def params_reduction(self) -> float:
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flops_reduction"] = round(self.flops_reduction, 6)
        d["params_reduction"] = round(self.params_reduction, 6)
        if self.sensitivities is not None:  # JSON keys must be strings
            d["sensitivities"] = {k: {str(r): float(v) for r, v in s.items()}
                                  for k, s in self.sensitivities.items()}
        return d


def _shapes_list(inputs: InputShapes) -> list[list[int]]:
    if inputs and isinstance(inputs[0], int):
        return [list(inputs)]  # type: ignore[arg-type]
    return [list(s) for s in inputs]  # type: ignore[union-attr]


def count_flops(model: Any, inputs: InputShapes, dtypes: str | Sequence[str] = "float32") -> int:
    """FLOPs (multiply-adds of conv/fc plus bn/relu/pool) for one forward at ``inputs`` shapes.

    Uses ``paddleslim.analysis.dygraph_flops`` (traces the model to a static program). It is
    quieter than ``paddle.flops`` (which prints a table) and counts the same layers.
    """
    import_paddle()
    from paddleslim.analysis import dygraph_flops

    shapes = _shapes_list(inputs)
    dts = [dtypes] * len(shapes) if isinstance(dtypes, str) else list(dtypes)
    training = model.training
    model.eval()
    try:
        with quiet_paddleslim():
            return int(dygraph_flops(model, shapes if len(shapes) > 1 else shapes[0], dtypes=dts))
    finally:
        if training:
            model.train()


def _make_pruner(model: Any, criterion: str, inputs: InputShapes, input_dtype: str,
                 skip_leaves: bool) -> Any:
    import_paddle()
    import paddleslim.dygraph as pd
    from paddleslim.dygraph.prune.filter_pruner import FilterPruner

    if criterion not in CRITERIA:
        raise UserError(f"unknown pruning criterion '{criterion}'.",
                        f"use one of: {', '.join(CRITERIA)}.")
    cls = getattr(pd, CRITERIA[criterion])
    shapes = _shapes_list(inputs)
    # FPGMFilterPruner.__init__ does not forward input_dtype (needed for int64 text inputs);
    # every criterion only overrides cal_mask, so initialise through the common base instead.
    pruner = cls.__new__(cls)
    with quiet_paddleslim():
        FilterPruner.__init__(pruner, model, shapes if len(shapes) > 1 else shapes[0],
                              sen_file=None, skip_leaves=skip_leaves,
                              input_dtype=input_dtype)
    return pruner


def _name_maps(model: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(structured name -> unique param name, unique -> structured)."""
    s2u = {n: p.name for n, p in model.named_parameters()}
    return s2u, {u: s for s, u in s2u.items()}


def _prunable(model: Any, pruner: Any) -> list[str]:
    """Unique names of conv weights that can lead a pruning group (not depthwise/transposed)."""
    import_paddle()
    import paddle

    grouped = set()
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, paddle.nn.Conv2D) and layer._groups > 1:
            grouped.update(p.name for p in layer.parameters(include_sublayers=False))
    return [c.master_name for c in pruner.collections
            if c.master_axis == 0 and c.master_name not in grouped
            and c.master_name not in pruner.skip_vars]


def prunable_params(model: Any, inputs: InputShapes, input_dtype: str = "float32") -> list[str]:
    """Structured names of the conv weights ``prune_filters`` accepts in ``ratios``."""
    pruner = _make_pruner(model, "l1", inputs, input_dtype, True)
    _, u2s = _name_maps(model)
    return [u2s.get(n, n) for n in _prunable(model, pruner)]


def _resolve(names: Sequence[str], model: Any, allowed: list[str], what: str) -> list[str]:
    s2u, u2s = _name_maps(model)
    out = []
    for name in names:
        uname = s2u.get(name, name)
        if uname not in allowed:
            choices = ", ".join(u2s.get(a, a) for a in allowed) or "none"
            raise UserError(f"{what} '{name}' is not a prunable conv weight of this model.",
                            f"use one of: {choices}.")
        out.append(uname)
    return out


def _finalize(model: Any) -> dict[str, list[int]]:
    """Drop PaddleSlim's backup buffers and make layer attributes match the new shapes.

    ``imperative_apply`` keeps a full-size copy of every pruned tensor as a ``*_backup``
    buffer (for ``restore``); left in place they would double the checkpoint and keep the
    original size in ``state_dict``. Conv/BN/Linear forwards read only the tensors, but
    ``_out_channels`` & co. feed ``repr`` and anyone rebuilding layers, so we sync them.
    """
    import_paddle()
    import paddle

    shapes = {}
    for _, layer in model.named_sublayers(include_self=True):
        for key in [k for k in layer._buffers if k.endswith("_backup")]:
            del layer._buffers[key]
        _sync_layer_attrs(layer, paddle)
    for name, p in model.named_parameters():
        shapes[name] = list(p.shape)
    return shapes


def _sync_layer_attrs(layer: Any, paddle: Any) -> None:
    has_weight = getattr(layer, "weight", None) is not None
    if isinstance(layer, paddle.nn.layer.conv._ConvNd) and has_weight:
        w = layer.weight.shape
        if isinstance(layer, (paddle.nn.Conv1DTranspose, paddle.nn.Conv2DTranspose,
                              paddle.nn.Conv3DTranspose)):
            layer._in_channels, layer._out_channels = w[0], w[1] * layer._groups
        else:
            layer._out_channels, layer._in_channels = w[0], w[1] * layer._groups
    elif hasattr(layer, "_num_features") and has_weight:
        layer._num_features = layer.weight.shape[0]
    elif isinstance(layer, paddle.nn.Linear):
        layer._in_features, layer._out_features = layer.weight.shape


def prune_filters(
    model: Any,
    inputs: InputShapes,
    *,
    criterion: Criterion = "l1",
    ratios: dict[str, float] | None = None,
    flops_reduction: float | None = None,
    spread: Literal["sensitivity", "uniform"] = "sensitivity",
    eval_fn: Callable[[Any], float] | None = None,
    sen_file: str | Path | None = None,
    skip: Sequence[str] = (),
    align: int | None = None,
    input_dtype: str = "float32",
    skip_leaves: bool = True,
    tolerance: float = 0.1,
) -> PruneReport:
    """Prune conv filters of ``model`` in place and return what changed.

    Args:
        model: a dygraph Layer (prune before building the fine-tuning optimizer: tensors change
            shape, and an existing optimizer's accumulators would not match).
        inputs: input shape(s) used to trace the graph and count FLOPs, e.g. ``[1, 3, 32, 32]``
            or ``[[1, 128], [1, 128]]`` for several inputs.
        criterion: filter importance: ``l1`` / ``l2`` norm or ``fpgm`` (geometric median).
        ratios: per-layer fraction of filters to remove; see ``prunable_params`` for names.
        flops_reduction: alternatively, the fraction of FLOPs to remove, in (0, 1).
        spread: how ``flops_reduction`` is spread over layers.
        eval_fn: ``eval_fn(model) -> score`` (higher is better, e.g. accuracy on a small
            held-out set); required for ``spread="sensitivity"``. Called 9 times per layer.
        sen_file: JSON file caching the sensitivities ({structured param: {ratio: loss}});
            reused when it exists (only missing entries are evaluated), written afterwards.
        skip: conv weights never to prune.
        align: round kept channel counts to a multiple of this (SIMD-friendly shapes).
        skip_leaves: let PaddleSlim skip convs whose output is a graph leaf.
        tolerance: largest accepted miss of ``flops_reduction`` before falling back to uniform.
    """
    if (ratios is None) == (flops_reduction is None):
        raise UserError("prune needs exactly one of ratios or flops_reduction.",
                        "set ratios: {conv1.weight: 0.5} or flops_reduction: 0.5")
    if criterion not in CRITERIA:
        raise UserError(f"unknown pruning criterion '{criterion}'.",
                        f"use one of: {', '.join(CRITERIA)}.")
    if spread not in ("sensitivity", "uniform"):
        raise UserError(f"unknown spread '{spread}'.", "use sensitivity or uniform.")
    if align is not None and align < 1:
        raise UserError(f"align must be >= 1, got {align}.", "use e.g. align: 8 or leave it unset")
    if flops_reduction is not None:
        check_fraction(flops_reduction, "flops_reduction", low_open=True)
        if spread == "sensitivity" and eval_fn is None:
            raise UserError("spread 'sensitivity' needs an eval_fn(model) -> score.",
                            "pass eval_fn, or use spread: uniform.")
    for name, r in (ratios or {}).items():
        check_fraction(r, f"ratios[{name}]")

    flops_before = count_flops(model, inputs, input_dtype)
    params_before = count_params(model)
    pruner = _make_pruner(model, criterion, inputs, input_dtype, skip_leaves)
    allowed = _prunable(model, pruner)
    skip_u = _resolve(skip, model, allowed, "skip entry")
    candidates = [n for n in allowed if n not in skip_u]
    _, u2s = _name_maps(model)

    sensitivities = None
    note = ""
    with quiet_paddleslim():
        if ratios is not None:
            mode = "ratios"
            unames = _resolve(list(ratios), model, allowed, "ratios key")
            applied = {u: float(r) for u, r in zip(unames, ratios.values(), strict=True)
                       if u not in skip_u}
            if align:
                applied = pruner._round_to(applied, dims=0, factor=align)
            pruner.prune_vars(applied, 0)
        elif spread == "sensitivity":
            mode = "flops:sensitivity"
            applied, sensitivities, reached = _sensitivity_prune(
                model, pruner, flops_reduction, eval_fn, sen_file, candidates, align, inputs,
                input_dtype, flops_before)
            if abs(reached - flops_reduction) > tolerance:
                note = (f"sensitivity search reached {reached:.3f} FLOPs reduction for a "
                        f"target of {flops_reduction}; used the uniform spread instead")
                _log.warning(note)
                pruner.restore()
                mode = "flops:uniform"
                applied = _uniform_prune(model, pruner, candidates, flops_reduction, align,
                                         inputs, input_dtype, flops_before)
        else:
            mode = "flops:uniform"
            applied = _uniform_prune(model, pruner, candidates, flops_reduction, align,
                                     inputs, input_dtype, flops_before)

    shapes = _finalize(model)
    return PruneReport(
        criterion=criterion, mode=mode,
        flops_before=flops_before, flops_after=count_flops(model, inputs, input_dtype),
        params_before=params_before, params_after=count_params(model),
        ratios={u2s.get(u, u): round(float(r), 6) for u, r in applied.items()},
        shapes=shapes, target_flops_reduction=flops_reduction,
        sensitivities=None if sensitivities is None else
        {u2s.get(u, u): dict(s) for u, s in sensitivities.items()},
        note=note)


def _sensitivity_prune(model: Any, pruner: Any, target: float, eval_fn: Callable[[Any], float],
                       sen_file: str | Path | None, candidates: list[str], align: int | None,
                       inputs: InputShapes, input_dtype: str, flops_before: int,
                       ) -> tuple[dict[str, float], dict, float]:
    def score() -> float:
        training = model.training
        model.eval()
        try:
            return float(eval_fn(model))
        finally:
            if training:
                model.train()

    s2u, u2s = _name_maps(model)
    if sen_file and Path(sen_file).is_file():
        # Our cache is JSON keyed by structured names: PaddleSlim's pickle is keyed by unique
        # parameter names (conv2d_3.w_0), which change with model construction order.
        cached = _load_sensitivities(Path(sen_file))
        pruner._status.sensitivies = {s2u[k]: v for k, v in cached.items() if k in s2u}
    with tempfile.TemporaryDirectory(prefix="paddleopt-sens-") as tmp:
        # Fresh lists: PaddleSlim's skip_vars defaults are shared mutable lists. The pickle
        # path is required (it saves after every step) but must not exist yet, or it would
        # replace the cache loaded above.
        pruner.sensitive(eval_func=score, sen_file=str(Path(tmp) / "sens.pickle"),
                         target_vars=list(candidates), skip_vars=[])
    # (sensitive() returns a Status object instead of the dict in some paths; read it here.)
    sens = pruner._status.sensitivies
    if sen_file:
        _save_sensitivities(Path(sen_file), {u2s.get(k, k): v for k, v in sens.items()})
    # What FilterPruner.sensitive_prune does, minus its shared mutable skip list; calling the
    # two steps ourselves also hands us the per-layer ratios.
    applied, _ = pruner.get_ratios_by_sensitivity(
        target, align=align, dims=0, skip_vars=[n for n in sens if n not in candidates])
    pruner.prune_vars(applied, 0)
    reached = 1.0 - count_flops(model, inputs, input_dtype) / flops_before
    return applied, {k: dict(v) for k, v in sens.items()}, reached


def _load_sensitivities(path: Path) -> dict[str, dict[float, float]]:
    import json

    try:
        data = json.loads(path.read_text())
        return {k: {round(float(r), 2): float(v) for r, v in s.items()} for k, s in data.items()}
    except (ValueError, AttributeError) as exc:
        raise UserError(f"sensitivity file '{path}' is not valid JSON from paddleopt: {exc}",
                        "delete it to recompute the sensitivities.") from exc


def _save_sensitivities(path: Path, sens: dict[str, dict[float, float]]) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: {str(r): float(v) for r, v in sorted(s.items())}
                                for k, s in sens.items()}, indent=1))


def _uniform_prune(model: Any, pruner: Any, candidates: list[str], target: float,
                   align: int | None, inputs: InputShapes, input_dtype: str,
                   flops_before: int) -> dict[str, float]:
    """Bisect one ratio shared by every candidate conv until the FLOPs target is met."""
    if not candidates:
        raise UserError("this model has no prunable conv layers left (all skipped or none).",
                        "remove entries from skip, or prune a model with Conv2D layers.")

    def ratios_for(r: float) -> dict[str, float]:
        rs = {n: r for n in candidates}
        return pruner._round_to(rs, dims=0, factor=align) if align else rs

    def reduction(r: float) -> float:
        plan = pruner.prune_vars(ratios_for(r), 0)
        red = 1.0 - count_flops(model, inputs, input_dtype) / flops_before
        plan.restore(model)
        return red

    lo, hi = 0.0, 0.95
    best, best_err = hi, float("inf")
    for _ in range(12):  # channel counts are integers; 12 halvings are below one channel
        mid = (lo + hi) / 2
        red = reduction(mid)
        if abs(red - target) < best_err:
            best, best_err = mid, abs(red - target)
        if red < target:
            lo = mid
        else:
            hi = mid
    applied = ratios_for(best)
    pruner.prune_vars(applied, 0)
    return applied


def load_pruned_state(model: Any, state_dict: dict[str, Any]) -> None:
    """Load a pruned model's ``state_dict`` into a freshly built (unpruned) model.

    A pruned checkpoint cannot be loaded with ``set_state_dict`` into the original
    architecture: shapes differ. Conv/BN/Linear forwards only read tensor shapes (plus
    ``groups`` for grouped convs), so we resize each parameter to the saved shape first.
    """
    paddle = import_paddle()
    import numpy as np

    for layer_name, layer in model.named_sublayers(include_self=True):
        for pname, p in layer.named_parameters(include_sublayers=False):
            key = f"{layer_name}.{pname}" if layer_name else pname
            if key not in state_dict:
                continue
            new_shape = list(state_dict[key].shape)
            if new_shape == list(p.shape):
                continue
            if len(new_shape) != len(p.shape):
                raise UserError(f"checkpoint tensor '{key}' has shape {new_shape}, the model "
                                f"has {list(p.shape)}.",
                                "rebuild the model with the same architecture it was saved from.")
            if pname == "weight" and isinstance(layer, paddle.nn.Conv2D) and layer._groups > 1:
                per_group = p.shape[0] // layer._groups  # filters per group stay fixed
                layer._groups = new_shape[0] // per_group
            place = (paddle.CPUPlace() if p.place.is_cpu_place()
                     else paddle.CUDAPlace(p.place.gpu_device_id()))
            p.value().get_tensor().set(np.zeros(new_shape, dtype=p.numpy().dtype), place)
        _sync_layer_attrs(layer, paddle)
    model.set_state_dict(state_dict)
