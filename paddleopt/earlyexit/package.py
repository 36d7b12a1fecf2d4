"""Write a multi-exit network as deployable segments, and what stopping at each exit costs.

Each segment is a complete inference artifact (``exits/seg<i>/``: model, params, manifest with
its io), so every backend loads it the usual way (``load_predictor``) and the conversion
stages (``to_onnx``, ``to_lite``) convert it with their own checks (``exits/seg<i>_onnx/``,
``exits/seg<i>_lite/``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paddleopt.utils.imports import import_paddle
from paddleopt.utils.jit import save_layer

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, Manifest
    from paddleopt.stages.base import StageContext


def save_segments(net: Any, base: Manifest, input_shape: list[int], out_dir: Path,
                  host_heads: bool = True) -> list[Path]:
    """Export every segment of ``net`` to ``out_dir/exits/seg<i>`` (inference artifacts);
    with ``host_heads`` the exit segments return only their feature map and the heads go to
    ``out_dir/exits/heads.npz`` (the runner computes them with numpy)."""
    from paddleopt.artifact import TensorSpec
    from paddleopt.earlyexit.network import head_arrays, segments

    paddle = import_paddle()
    pieces = segments(net, with_heads=not host_heads)
    (out_dir / "exits").mkdir(parents=True, exist_ok=True)
    if host_heads:
        np.savez(out_dir / "exits" / "heads.npz", **head_arrays(net))
    shape = [-1, *input_shape[1:]]
    folders = []
    x = paddle.zeros([1, *input_shape[1:]], dtype="float32")
    for i, seg in enumerate(pieces):
        seg.eval()
        with paddle.no_grad():
            outs = seg(x)
        outs = outs if isinstance(outs, tuple) else (outs,)
        folder = out_dir / "exits" / f"seg{i}"
        folder.mkdir(parents=True, exist_ok=True)
        # clip_extra=False keeps the attributes and outputs Paddle Lite's opt needs
        save_layer(seg, str(folder / "model"),
                   input_spec=[paddle.static.InputSpec(shape, "float32", "x")],
                   clip_extra=False)
        for leftover in folder.glob("model.pdiparams.info"):
            leftover.unlink()
        final = i == len(pieces) - 1
        names = ["logits"] if final else ["feature", "logits"][:len(outs)]
        manifest = base.derive(kind="inference", files={"model": "model.pdmodel",
                                                        "params": "model.pdiparams"})
        manifest.io.inputs = [TensorSpec("x", list(shape))]
        manifest.io.outputs = [TensorSpec(n, [-1, *[int(d) for d in o.shape[1:]]])
                               for n, o in zip(names, outs)]
        manifest.metrics = {"segment": i}
        if i > 0:  # takes a feature map: no image preprocessing, no dataset to sample from
            manifest.dataset, manifest.preprocess, manifest.model = {}, {}, {}
        manifest.save(folder)
        folders.append(folder)
        x = outs[0]
        shape = [-1, *[int(d) for d in x.shape[1:]]]
    return folders


def convert_segments(folders: list[Path], fmt: str, ctx: StageContext) -> list[Path]:
    """Convert each inference segment with the to_onnx / to_lite stage (x86 .nb), parity
    checked by that stage; returns the new folders."""
    from paddleopt.artifact import Artifact

    if fmt == "onnx":
        from paddleopt.stages.to_onnx import ToOnnxConfig, ToOnnxStage

        stage: Any = ToOnnxStage(ToOnnxConfig())
    else:
        from paddleopt.stages.to_lite import ToLiteConfig, ToLiteStage

        stage = ToLiteStage(ToLiteConfig(target="x86"))
    out = []
    for folder in folders:
        dest = folder.with_name(f"{folder.name}_{fmt}")
        dest.mkdir(parents=True, exist_ok=True)
        manifest = stage.run(Artifact.open(folder), dest, ctx)
        manifest.save(dest)
        out.append(dest)
    return out


def chain_outputs(folders: list[Path], feeds: np.ndarray, heads: list[Any] | None = None,
                  backend: str = "paddle_inference", options: dict[str, Any] | None = None
                  ) -> list[np.ndarray]:
    """Run the segments one after another on the whole batch (no exit taken): every exit's
    logits then the final ones, to compare with the dygraph network. ``heads``: the host
    heads (``runner.load_heads``) when the segments return only feature maps."""
    from paddleopt.artifact import Artifact
    from paddleopt.deploy.predictor import load_predictor

    outs, x = [], feeds
    for i, folder in enumerate(folders):
        res = load_predictor(Artifact.open(folder), backend, options or {"threads": 1}).run([x])
        if i < len(folders) - 1:
            x = res[0]
            outs.append(res[1] if heads is None else heads[i](res[0]))
        else:
            outs.append(res[0])
    return outs


def path_latency(folders: list[Path], heads: list[Any] | None, plain: Artifact,
                 input_shape: list[int], rounds: int = 5, calls: int = 200
                 ) -> tuple[list[float], float]:
    """Batch-1 milliseconds of the early-exit runner when a sample leaves at each exit (the
    final head last), and of the plain model, on Paddle Inference (oneDNN, 1 thread): the
    whole path a sample takes (segment calls, host heads, the confidence check), best of
    ``rounds`` alternating rounds so that machine load hits every path alike."""
    from paddleopt.artifact import Artifact
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.earlyexit.runner import ChainedPredictor

    opts = {"threads": 1}
    segs = [load_predictor(Artifact.open(f), "paddle_inference", opts) for f in folders]
    exits = len(folders) - 1
    runners = []
    for i in range(exits + 1):  # threshold 0 at exit i: every sample leaves there
        ths = [0.0 if k == i else None for k in range(exits)]
        runners.append(ChainedPredictor(segs, ths, "paddle_inference", heads=heads))
    runners.append(load_predictor(plain, "paddle_inference", opts))
    x = np.random.default_rng(0).random([1, *input_shape[1:]], dtype=np.float32)
    best = [float("inf")] * len(runners)
    for _ in range(rounds):
        for k, runner in enumerate(runners):
            for _ in range(20):
                runner.run([x])
            t0 = time.perf_counter()
            for _ in range(calls):
                runner.run([x])
            best[k] = min(best[k], (time.perf_counter() - t0) / calls * 1e3)
    return best[:-1], best[-1]


def segment_flops(net: Any, plain_model: Any, input_shape: list[int]
                  ) -> tuple[list[float], float]:
    """MFLOPs (paddle.flops) of each segment for one sample, and of the plain model."""
    import contextlib
    import io

    from paddleopt.earlyexit.network import segments

    paddle = import_paddle()
    out, x = [], paddle.zeros([1, *input_shape[1:]], dtype="float32")
    with contextlib.redirect_stdout(io.StringIO()):  # paddle.flops prints per layer type
        for seg in segments(net):
            seg.eval()
            out.append(paddle.flops(seg, list(x.shape), print_detail=False) / 1e6)
            with paddle.no_grad():
                res = seg(x)
            x = res[0] if isinstance(res, tuple) else res
        plain = paddle.flops(plain_model, [1, *input_shape[1:]], print_detail=False) / 1e6
    return out, plain
