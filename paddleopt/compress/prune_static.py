"""How much to prune each conv of an inference program to reach a FLOPs target.

The static-graph counterpart of ``compress.prune``'s sensitivity spread, for models that
exist only as ``inference.pdmodel`` (``prune_distill``). Each prunable conv is pruned alone
(lowest-L1 output channels, PaddleSlim's static ``Pruner``) at ratios 0.1 .. 0.8 and the
change of the model's outputs on held-out inputs is measured (relative squared error,
``sum((y - y0)^2) / sum(y0^2)``: any output, no labels). A loss threshold then gives each
conv the largest ratio whose interpolated loss stays below it; the threshold is bisected
until the pruned program's FLOPs fall to the target. Insensitive layers lose more channels
than sensitive ones, instead of one ratio everywhere.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.compress._common import quiet_paddleslim, static_mode
from paddleopt.utils.errors import UserError

GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _load(model_dir: str | Path, exe: Any) -> tuple[Any, list[str], list[Any]]:
    import paddle

    from paddleopt.compress.ptq import model_feeds

    model_file, params_file, _ = model_feeds(model_dir)
    return paddle.static.load_inference_model(
        str(model_file.parent), exe, model_filename=model_file.name,
        params_filename=params_file.name if params_file else None)


def program_flops(program: Any) -> int:
    """Multiply-accumulate FLOPs at batch 1 (dynamic dims other than batch must be fixed)."""
    from paddleslim.analysis import flops

    try:
        return int(flops(program))
    except Exception as exc:  # PaddleSlim cannot count a program with dynamic H/W
        raise UserError(f"cannot count the model's FLOPs: {type(exc).__name__}: {exc}",
                        "prune_distill needs fixed input sizes except the batch; give "
                        "explicit ratios instead of flops_reduction.") from exc


def pruned_flops(program: Any, scope: Any, place: Any, ratios: dict[str, float]) -> int:
    from paddleslim.prune import Pruner

    ratios = {k: v for k, v in ratios.items() if v > 0}
    if not ratios:
        return program_flops(program)
    with quiet_paddleslim():  # prune() returns the pruned copy; the input stays as it was
        pruned, _, _ = Pruner("l1_norm").prune(program.clone(), scope, params=list(ratios),
                                               ratios=list(ratios.values()), place=place,
                                               only_graph=True)
    return program_flops(pruned)


def sensitivities(model_dir: str | Path, inputs: Sequence[np.ndarray], params: Sequence[str],
                  grid: Sequence[float] = GRID) -> dict[str, dict[str, float]]:
    """{conv weight: {ratio: relative output error with only that conv pruned}}."""
    import paddle
    from paddleslim.prune import Pruner

    place = paddle.CPUPlace()
    with static_mode() as scope, quiet_paddleslim():
        exe = paddle.static.Executor(place)
        program, feeds, fetch = _load(model_dir, exe)
        feed = dict(zip(feeds, inputs))
        ref = [np.asarray(o) for o in exe.run(program, feed=feed, fetch_list=fetch)]
        norm = sum(float((r.astype(np.float64) ** 2).sum()) for r in ref) or 1.0
        out: dict[str, dict[str, float]] = {}
        for name in params:
            out[name] = {}
            for ratio in grid:
                pruned, backup, _ = Pruner("l1_norm").prune(
                    program.clone(), scope, params=[name], ratios=[ratio], place=place,
                    param_backup=True)
                got = exe.run(pruned, feed=feed, fetch_list=[v.name for v in fetch])
                err = sum(float(((np.asarray(g, np.float64) - r) ** 2).sum())
                          for g, r in zip(got, ref)) / norm
                out[name][f"{ratio:g}"] = round(err, 8)
                for var, value in backup.items():  # restore the unpruned weights
                    scope.find_var(var).get_tensor().set(value, place)
    return out


def _ratio_at(sens: dict[str, float], threshold: float) -> float:
    """The largest ratio whose (linearly interpolated) loss stays <= threshold."""
    points = [(0.0, 0.0)] + sorted((float(r), loss) for r, loss in sens.items())
    best = 0.0
    for (r0, l0), (r1, l1) in zip(points, points[1:]):
        if l1 <= threshold:
            best = r1
            continue
        if l0 <= threshold < l1:
            best = r0 + (r1 - r0) * (threshold - l0) / (l1 - l0)
        break
    return round(best, 4)


def ratios_for_flops(model_dir: str | Path, sens: dict[str, dict[str, float]],
                     flops_reduction: float) -> tuple[dict[str, float], int, int]:
    """Per-conv ratios that remove at least ``flops_reduction`` of the FLOPs with the lowest
    loss threshold; (ratios, flops before, flops after)."""
    import paddle

    place = paddle.CPUPlace()
    with static_mode() as scope, quiet_paddleslim():
        exe = paddle.static.Executor(place)
        program, _, _ = _load(model_dir, exe)
        before = program_flops(program)

        def at(t: float) -> tuple[dict[str, float], int]:
            ratios = {n: _ratio_at(s, t) for n, s in sens.items()}
            return ratios, pruned_flops(program, scope, place, ratios)

        top = max((v for s in sens.values() for v in s.values()), default=0.0)
        ratios, after = at(top)
        if after > (1 - flops_reduction) * before:
            raise UserError(
                f"pruning every prunable conv by {GRID[-1]:g} removes only "
                f"{1 - after / before:.0%} of the FLOPs, short of flops_reduction "
                f"{flops_reduction:g}.", "lower flops_reduction (convs that cannot be pruned: "
                "the first, depthwise ones and those flattened into a matmul keep theirs).")
        lo, hi = 0.0, top
        for _ in range(30):
            mid = (lo + hi) / 2
            r, f = at(mid)
            if f <= (1 - flops_reduction) * before:
                hi, ratios, after = mid, r, f
            else:
                lo = mid
    return ratios, before, after
