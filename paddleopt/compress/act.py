"""Compress an inference model without its training code: PaddleSlim auto-compression (ACT).

The fp32 inference program is its own teacher: ACT loads it twice, rewrites one copy into the
student (quantization-aware fake-quant ops, or channels pruned by L1 norm) and fine-tunes the
student on unlabelled inputs so that its outputs (and optionally intermediate tensors named
in ``nodes``) match the teacher's (``loss``: l2 by default). No labels, no Layer code, no
checkpoint: exactly what a user with a PaddleClas/PaddleOCR ``inference.pdmodel`` has.

Checked on our stack (paddle 2.6.2, paddleslim 2.6.0, CPU; see docs/COMPRESSION.md):
strategies ``qat_dis`` (QuantAware + Distillation) and ``channel_prune_dis`` (ChannelPrune +
Distillation) run. ACT's INT8 output needs ``onednn_fix.apply_onednn_int8_fixes`` before
oneDNN INT8 can run it (the residual-pool descriptor failure); it is applied here.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from paddleopt.compress._common import static_mode
from paddleopt.compress.ptq import DEFAULT_OP_TYPES, model_feeds
from paddleopt.compress.recipe import DistillSettings
from paddleopt.utils.errors import UserError

Strategy = Literal["qat", "prune"]


@dataclass
class ACTReport:
    strategy: str
    steps: int
    samples_per_step: int
    seconds: float
    model_file: str
    params_file: str
    config: dict[str, Any]
    quant: dict[str, Any] = field(default_factory=dict)
    onednn_fixes: list[str] = field(default_factory=list)


def act_compress(model_dir: str | Path, out_dir: str | Path, data: Any, *,
                 strategy: Strategy = "qat", train: DistillSettings | None = None,
                 batch_size: int = 32, batch_nums: int = 64, preprocess: Any = None,
                 quantizable_op_types: Sequence[str] = DEFAULT_OP_TYPES,
                 weight_quantize_type: str = "channel_wise_abs_max", onnx_format: bool = True,
                 prune_ratio: float = 0.5, prune_params: Sequence[str] | None = None,
                 ) -> ACTReport:
    """Fine-tune the inference model in ``model_dir`` by distillation from itself and write
    ``out_dir/model.pdmodel`` + ``model.pdiparams``.

    Args:
        data: unlabelled inputs, as ``compress.ptq.calibration_batches`` takes them (an
            .npz, an image folder with ``preprocess``, or a list of batches).
        strategy: qat (INT8 quant-aware training) or prune (structured channel pruning).
        prune_ratio: prune: the share of output channels removed from each pruned conv.
        prune_params: prune: conv weight names to prune (default: every conv weight but the
            first conv's, whose input is the image, and depthwise ones).
    """
    import time

    import numpy as np

    from paddleopt.utils.imports import import_paddle

    train = train or DistillSettings()
    if strategy not in ("qat", "prune"):
        raise UserError(f"unknown ACT strategy '{strategy}'.", "use qat or prune.")
    if not 0 < prune_ratio < 1:
        raise UserError(f"prune_ratio must be in (0, 1), got {prune_ratio}.",
                        "use e.g. 0.5 (half the channels of each pruned conv).")
    if train.steps < 1 or train.learning_rate <= 0:
        raise UserError("ACT needs steps >= 1 and learning_rate > 0.",
                        "use e.g. steps: 200, learning_rate: 0.0001.")
    model_file, params_file, feeds = model_feeds(model_dir)
    batches = training_batches(feeds, data, batch_size, batch_nums, preprocess)
    _check_nodes(model_file, train.nodes)
    if strategy == "prune":
        prune_params = list(prune_params) if prune_params else prunable_convs(model_file)
        if not prune_params:
            raise UserError(f"'{model_file}' has no conv weight that channel pruning can "
                            "shrink.", "use strategy qat, or name prune_params.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paddle = import_paddle()
    from paddleslim.auto_compression import AutoCompression

    config: dict[str, Any] = {
        "Distillation": {"alpha": train.alpha, "loss": train.loss, "node": list(train.nodes)},
        "TrainConfig": {"train_iter": train.steps, "eval_iter": 10 ** 9,
                        "learning_rate": train.learning_rate, "logging_iter": 10 ** 9,
                        "optimizer_builder": {"optimizer": {"type": "Momentum"},
                                              "weight_decay": 0.0}}}
    if strategy == "qat":
        config["QuantAware"] = {"quantize_op_types": list(quantizable_op_types),
                                "weight_quantize_type": weight_quantize_type,
                                "onnx_format": onnx_format}
    else:
        config["ChannelPrune"] = {"pruned_ratio": prune_ratio, "criterion": "l1_norm",
                                  "prune_params_name": list(prune_params or [])}

    class _Batches(paddle.io.Dataset):  # items already are whole batches
        def __getitem__(self, i: int) -> tuple:
            return batches[i]

        def __len__(self) -> int:
            return len(batches)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="act_") as tmp, static_mode():
        # ACT writes beside its input (the shape-inferred copy): work on a private copy
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy2(model_file, src / "model.pdmodel")
        if params_file is not None:
            shutil.copy2(params_file, src / "model.pdiparams")
        feed_vars = [paddle.static.data(f["name"], f["shape"], f["dtype"]) for f in feeds]
        loader = paddle.io.DataLoader(_Batches(), feed_list=feed_vars, return_list=False,
                                      batch_size=None)
        save = Path(tmp) / "out"
        try:
            with _quiet_logs(), frozen_statistics():
                ac = AutoCompression(model_dir=str(src), model_filename="model.pdmodel",
                                     params_filename="model.pdiparams"
                                     if params_file is not None else None,
                                     save_dir=str(save), config=config,
                                     train_dataloader=loader, deploy_hardware=None)
                ac.compress()
        except (AssertionError, ValueError, IndexError, KeyError, RuntimeError) as exc:
            raise UserError(f"PaddleSlim auto-compression ({strategy}) failed on "
                            f"'{model_file}': {type(exc).__name__}: {exc}",
                            "check the names in nodes/prune_params; PTQ (ptq stage) needs "
                            "no training and may still work.") from exc
        for name in ("model.pdmodel", "model.pdiparams"):
            shutil.copy2(save / name, out_dir / name)
    seconds = time.perf_counter() - started
    _check_finite(out_dir, feeds, batches[0], train.learning_rate)

    from paddleopt.compress.int8_check import program_quant_summary
    from paddleopt.compress.onednn_fix import apply_onednn_int8_fixes

    out_model = out_dir / "model.pdmodel"
    fixes = apply_onednn_int8_fixes(out_model) if strategy == "qat" else []
    return ACTReport(
        strategy=strategy, steps=train.steps,
        samples_per_step=int(np.asarray(batches[0][0]).shape[0]), seconds=round(seconds, 1),
        model_file=str(out_model), params_file=str(out_dir / "model.pdiparams"),
        config=config, quant=program_quant_summary(out_model) if strategy == "qat" else {},
        onednn_fixes=fixes)


def training_batches(feeds: list[dict[str, Any]], data: Any, batch_size: int, batch_nums: int,
                     preprocess: Any = None) -> list[tuple]:
    """Unlabelled training batches of one size (a last short batch is dropped: ACT's
    loader and the static engine's teacher targets expect whole batches)."""
    import numpy as np

    from paddleopt.compress.ptq import calibration_batches

    batches = calibration_batches(data, feeds, batch_size=batch_size, batch_nums=batch_nums,
                                  preprocess=preprocess)
    return [b for b in batches if np.asarray(b[0]).shape[0] == np.asarray(
        batches[0][0]).shape[0]] or batches


def prunable_convs(model_file: str | Path) -> list[str]:
    """Conv weights channel pruning may shrink: every conv2d but the first (its input
    channels are the image's), no depthwise conv (its channels follow its input), and no conv
    whose output is flattened with its spatial positions into a matmul (LeNet-style heads:
    ACT's pruner does not shrink that matmul's weight rows, the program breaks)."""
    from paddleopt.artifact.program import read_program

    block = read_program(model_file).blocks[0]
    params = {v.name for v in block.vars if v.persistable}
    shapes = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars
              if v.type.HasField("lod_tensor")}
    consumers: dict[str, list[Any]] = {}
    for op in block.ops:
        for v in op.inputs:
            for n in v.arguments:
                consumers.setdefault(n, []).append(op)

    def spatial_flatten(name: str, hops: int = 0) -> bool:
        for op in consumers.get(name, []):
            if op.type in ("flatten_contiguous_range", "flatten2", "reshape2", "flatten"):
                dims = shapes.get(name, [])
                if len(dims) == 4 and dims[2] * dims[3] != 1:
                    return True
            elif hops < 8 and op.type not in ("conv2d", "depthwise_conv2d", "matmul_v2",
                                              "matmul", "mul"):
                outs = [n for v in op.outputs for n in v.arguments]
                if any(spatial_flatten(n, hops + 1) for n in outs):
                    return True
        return False

    out = []
    for op in block.ops:
        if op.type != "conv2d":
            continue
        weights = [n for v in op.inputs if v.parameter == "Filter" for n in v.arguments
                   if n in params]
        outputs = [n for v in op.outputs for n in v.arguments]
        if weights and not any(spatial_flatten(n) for n in outputs):
            out.append(weights[0])
    first = next((n for op in block.ops if op.type == "conv2d" for v in op.inputs
                  if v.parameter == "Filter" for n in v.arguments), None)
    return [w for w in out if w != first]


def _check_finite(out_dir: Path, feeds: list[dict[str, Any]], batch: tuple,
                  learning_rate: float) -> None:
    """A diverged run (loss nan: seen on PP-OCRv4 rec with matmuls quantized at lr 5e-5)
    still saves a model; refuse it here rather than hand back NaN weights."""
    import numpy as np

    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    with static_mode():
        exe = paddle.static.Executor(paddle.CPUPlace())
        program, names, fetch = paddle.static.load_inference_model(
            str(out_dir / "model"), exe)
        outs = exe.run(program, feed={f["name"]: np.asarray(a) for f, a in zip(feeds, batch)},
                       fetch_list=fetch)
    if not all(np.isfinite(np.asarray(o)).all() for o in outs):
        raise UserError(f"the distillation diverged: the model in '{out_dir}' computes "
                        f"non-finite outputs (learning_rate {learning_rate:g}).",
                        "lower learning_rate (e.g. 10x), or quantize fewer op types "
                        "(quantizable_op_types: [conv2d, depthwise_conv2d]).")


def _check_nodes(model_file: Path, nodes: Sequence[str]) -> None:
    if not nodes:
        return
    from paddleopt.artifact.program import read_program

    names = {v.name for b in read_program(model_file).blocks for v in b.vars}
    unknown = [n for n in nodes if n not in names]
    if unknown:
        raise UserError(f"distillation nodes {unknown} are not tensors of '{model_file}'.",
                        "name intermediate outputs of the program (paddleopt inspect lists "
                        "them), e.g. the input of the last conv.")


@contextlib.contextmanager
def frozen_statistics() -> Any:
    """Train the student with the inference program's own BatchNorm statistics.

    ACT's ``recover_inference_program`` sets ``is_test=False`` on every op: each BatchNorm
    then normalizes with the statistics of the current batch, and dropout draws masks. The
    fp32 teacher (``is_test=True``) uses the frozen running statistics, so the student starts
    far from it; on PP-OCRv4 rec (8 right-padded text lines per batch) the distillation loss
    started in the tens of thousands and was NaN within 8 steps at any learning rate. Here
    BatchNorm keeps training mode for its gradient but uses the global statistics
    (``use_global_stats``; the moving averages are not updated), and upscale-in-train dropout
    gets probability 0 (identity, as at inference).
    """
    from paddleslim.auto_compression import compressor

    original = compressor.recover_inference_program

    def recover(program: Any, startup_program: Any = None) -> Any:
        program = original(program, startup_program)
        for block in program.blocks:
            for op in block.ops:
                if op.type in ("batch_norm", "sync_batch_norm"):
                    op._set_attr("use_global_stats", True)
                    op._set_attr("trainable_statistics", False)
                elif op.type == "dropout" and op.attr("dropout_implementation") == \
                        "upscale_in_train":
                    op._set_attr("dropout_prob", 0.0)
        return program

    compressor.recover_inference_program = recover
    try:
        yield
    finally:
        compressor.recover_inference_program = original


@contextlib.contextmanager
def _quiet_logs() -> Any:
    """ACT logs every step and its pass manager prints; keep the stage log readable."""
    import logging

    loggers = [logging.getLogger(n) for n in ("paddleslim", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def inference_flops(model_dir: str | Path, batch: int = 1) -> int:
    """Multiply-accumulate FLOPs of an inference program at batch ``batch`` (dynamic
    dimensions other than the batch must be fixed in the program)."""
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    from paddleslim.analysis import flops

    model_file, params_file, _ = model_feeds(model_dir)
    with static_mode():
        exe = paddle.static.Executor(paddle.CPUPlace())
        program, _, _ = paddle.static.load_inference_model(
            str(model_file.parent), exe, model_filename=model_file.name,
            params_filename=params_file.name if params_file else None)
        return int(flops(program)) * batch
