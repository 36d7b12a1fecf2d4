"""Distillation of an inference model into a compressed copy of itself, on paddle.static.

The engine behind ``qat_distill`` (quantization) and ``prune_distill`` (channel pruning) when
only an ``inference.pdmodel`` exists. It is PaddleSlim ACT's idea built from its parts
(``recover_inference_program``, ``quant_aware``/``convert``, the static ``Pruner``) with
three differences that decide whether it works on real models (see docs/COMPRESSION.md):

* **Frozen statistics.** The student's BatchNorms normalize with the model's running
  statistics (``use_global_stats``), exactly as the fp32 teacher does; ACT switches every op
  to training mode, so each BatchNorm uses the statistics of the current batch. On PP-OCRv4
  rec (8 right-padded text lines per batch) that alone changed the output probabilities by
  up to 0.99 before any training step.
* **Calibrated scales before the first step.** Moving-average activation scales start from
  ``accum = state = 1``: the first scales are about half the real range and the quantized
  student starts far from the teacher (PP-OCRv4 rec: 38% of CTC frames kept their argmax,
  the l2 loss began in the tens of thousands and went NaN at any learning rate). Here the
  running sums start at zero and ``calib_batches`` forward passes set the scales before
  training.
* **The teacher is the fp32 program's own outputs**, computed once per batch before the
  student changes (no merged program). When an output is a softmax, its input (the
  logits) is matched instead: l2 on probabilities vanishes where the teacher is confident.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paddleopt.compress._common import quiet_paddleslim, static_mode
from paddleopt.utils.errors import UserError

Loss = Literal["l2", "l1", "soft_label"]


@dataclass
class StaticDistillReport:
    steps: int
    samples_per_step: int
    seconds: float
    targets: list[str]
    first_loss: float
    last_loss: float
    model_file: str
    params_file: str
    quant: dict[str, Any] = field(default_factory=dict)
    onednn_fixes: list[str] = field(default_factory=list)
    pruned: dict[str, float] = field(default_factory=dict)


def distill_targets(program: Any, fetch_names: Sequence[str], nodes: Sequence[str]) -> list[str]:
    """The tensors the student is trained to match: each output (the logits when it comes
    out of a softmax) plus the named intermediate ``nodes``."""
    producers = {n: op for op in program.global_block().ops
                 for n in op.output_arg_names}
    out = []
    for name in fetch_names:
        op = producers.get(name)
        out.append(op.input("X")[0] if op is not None and op.type == "softmax" else name)
    known = {v.name for v in program.list_vars()}
    unknown = [n for n in nodes if n not in known]
    if unknown:
        raise UserError(f"distillation nodes {unknown} are not tensors of the model.",
                        "name intermediate outputs of the program (paddleopt inspect lists "
                        "them), e.g. the input of the last conv.")
    return list(dict.fromkeys([*out, *nodes]))


def trainable_student(program: Any) -> Any:
    """The inference program made trainable with its inference-time statistics (see the
    module docstring): parameters restored, BatchNorm on global statistics, dropout off."""
    import paddle
    from paddleslim.common.recover_program import recover_inference_program

    # recover() adds initializers to this startup program; it is never run (the weights are
    # already in the scope), so a throwaway one keeps them out of ours.
    student = recover_inference_program(program.clone(), paddle.static.Program())
    block = student.global_block()
    for i in reversed(range(len(block.ops))):  # the executor adds its own feed ops (teacher
        if block.ops[i].type == "feed":        # targets are fed too)
            block._remove_op(i)
    for op in student.global_block().ops:
        if op.type in ("batch_norm", "sync_batch_norm"):
            op._set_attr("use_global_stats", True)
            op._set_attr("trainable_statistics", False)
        elif op.type == "dropout":
            if op.attr("dropout_implementation") != "upscale_in_train":
                raise UserError("the model has a downgrade_in_infer dropout, which cannot be "
                                "switched off for training.", "re-export it with "
                                "mode='upscale_in_train' dropout (Paddle's default).")
            op._set_attr("dropout_prob", 0.0)
    return student


def _loss(paddle: Any, student: Any, teacher: Any, kind: Loss) -> Any:
    if kind == "l1":
        return paddle.mean(paddle.abs(student - teacher))
    if kind == "soft_label":
        soft = paddle.nn.functional.softmax(teacher, axis=-1)
        return -paddle.mean(paddle.sum(soft * paddle.nn.functional.log_softmax(student, -1),
                                       axis=-1))
    return paddle.mean(paddle.square(student - teacher))


def _reset_moving_average(scope: Any, program: Any) -> int:
    """Zero the running sums of moving-average activation scales, so the first forward pass
    sets each scale to that batch's abs-max instead of a blend with the initial 1.0."""
    n = 0
    for var in program.list_vars():
        if var.persistable and (var.name.endswith("@state") or var.name.endswith("@accum")
                                or ".state" in var.name or ".accum" in var.name):
            found = scope.find_var(var.name)
            if found is not None and found.get_tensor()._is_initialized():
                tensor = found.get_tensor()
                tensor.set(np.zeros(np.array(tensor).shape, np.float32),
                           _place())
                n += 1
    return n


def _place() -> Any:
    import paddle

    return paddle.CPUPlace()


def static_distill(model_dir: str | Path, out_dir: str | Path, batches: list[tuple], *,
                   steps: int = 300, learning_rate: float = 1e-4, loss: Loss = "l2",
                   nodes: Sequence[str] = (), alpha: float = 1.0,
                   quant: dict[str, Any] | None = None,
                   prune: dict[str, float] | None = None, calib_batches: int = 8,
                   lr_schedule: Literal["constant", "cosine"] = "cosine",
                   log: Any = None) -> StaticDistillReport:
    """Train a quantized (``quant``: quant_aware config) and/or pruned (``prune``: conv
    weight -> ratio of output channels removed) copy of the inference model in
    ``model_dir`` to match its fp32 outputs on ``batches`` (tuples of arrays in feed order,
    cycled), and save it as ``out_dir/model.pdmodel`` + ``model.pdiparams``.
    """
    import paddle

    from paddleopt.compress.ptq import model_feeds

    if steps < 1 or learning_rate <= 0 or alpha <= 0:
        raise UserError("distillation needs steps >= 1, learning_rate > 0 and alpha > 0.",
                        "use e.g. steps: 300, learning_rate: 0.0001.")
    if quant is None and not prune:
        raise UserError("nothing to compress: give quant settings or prune ratios.",
                        "use qat_distill for INT8 or prune_distill for pruning.")
    model_file, params_file, feeds = model_feeds(model_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    place = _place()
    started = time.perf_counter()
    with static_mode() as scope, quiet_paddleslim():
        exe = paddle.static.Executor(place)
        program, feed_names, fetch_vars = paddle.static.load_inference_model(
            str(model_file.parent), exe, model_filename=model_file.name,
            params_filename=params_file.name if params_file else None)
        fetch_names = [v.name for v in fetch_vars]
        targets = distill_targets(program, fetch_names, nodes)
        feed = lambda b: dict(zip(feed_names, (np.asarray(a) for a in b)))  # noqa: E731
        teacher = [exe.run(program, feed=feed(b), fetch_list=targets) for b in batches]
        if prune:  # pruned as an inference program, then made trainable
            program = _prune(program, scope, place, prune)
        student = trainable_student(program)
        test = student.clone(for_test=True)
        if quant is not None:
            from paddleslim.quant import quant_aware

            test = quant_aware(test, place, dict(quant), scope=scope, for_test=True)
            student = quant_aware(student, place, dict(quant), scope=scope, for_test=False,
                                  return_program=True)
            _reset_moving_average(scope, student)
            calib = student.clone()
            for b in batches[:max(1, calib_batches)]:
                exe.run(calib, feed=feed(b), fetch_list=[])
        startup = paddle.static.Program()
        # A fresh name prefix: the loaded program already holds vars named tmp_0, tmp_1, ...
        # (dygraph-to-static exports), and the loss ops' default names would collide with
        # them (seen as gradient shape errors in a sum op).
        with paddle.static.program_guard(student, startup), \
                paddle.utils.unique_name.guard("distill_"):
            block = student.global_block()
            total = None
            for i, (name, ref) in enumerate(zip(targets, teacher[0])):
                have = list(block.var(name).shape[1:])
                if any(a not in (-1, b) for a, b in zip(have, np.shape(ref)[1:])):
                    raise UserError(f"distillation node '{name}' changes shape when pruned "
                                    f"({list(np.shape(ref)[1:])} -> {have}).",
                                    "match a tensor whose channels are not pruned (e.g. a "
                                    "residual sum or the model's output).")
                t = paddle.static.data(f"distill_teacher_{i}", [-1, *np.shape(ref)[1:]],
                                       "float32")
                term = _loss(paddle, block.var(name), t, loss)
                total = term if total is None else total + term
            total = alpha * total
            lr: Any = learning_rate
            if lr_schedule == "cosine":
                lr = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate, T_max=steps)
            opt = paddle.optimizer.Momentum(lr, momentum=0.9)
            opt.minimize(total)
        exe.run(startup)
        losses = []
        for step in range(steps):
            k = step % len(batches)
            fd = feed(batches[k])
            fd.update({f"distill_teacher_{i}": t for i, t in enumerate(teacher[k])})
            (value,) = exe.run(student, feed=fd, fetch_list=[total])
            value = float(np.asarray(value))
            if not np.isfinite(value):
                raise UserError(f"the distillation diverged at step {step + 1} (loss "
                                f"{value}, learning_rate {learning_rate:g}).",
                                "lower learning_rate (e.g. 10x), or quantize fewer op types.")
            losses.append(value)
            if lr_schedule == "cosine":
                lr.step()
            if log is not None and (step == 0 or (step + 1) % max(1, steps // 5) == 0):
                log.info("distill step %d/%d loss %.6g", step + 1, steps, value)
        if quant is not None:
            from paddleslim.quant import convert

            test = convert(test, place, dict(quant), scope=scope)
        block = test.global_block()
        paddle.static.save_inference_model(
            str(out_dir / "model"), [block.var(n) for n in feed_names],
            [block.var(n) for n in fetch_names], exe, program=test)
    seconds = time.perf_counter() - started
    report = StaticDistillReport(
        steps=steps, samples_per_step=int(np.asarray(batches[0][0]).shape[0]),
        seconds=round(seconds, 1), targets=targets, first_loss=losses[0],
        last_loss=losses[-1], model_file=str(out_dir / "model.pdmodel"),
        params_file=str(out_dir / "model.pdiparams"), pruned=dict(prune or {}))
    if quant is not None:
        from paddleopt.compress.int8_check import program_quant_summary
        from paddleopt.compress.onednn_fix import apply_onednn_int8_fixes

        report.onednn_fixes = apply_onednn_int8_fixes(out_dir / "model.pdmodel")
        report.quant = program_quant_summary(out_dir / "model.pdmodel")
    return report


def _prune(program: Any, scope: Any, place: Any, ratios: dict[str, float]) -> Any:
    """Remove the lowest-L1 output channels of each named conv weight (and what depends on
    them) from the program and the weights in ``scope``."""
    from paddleslim.prune import Pruner

    unknown = [n for n in ratios if program.global_block().vars.get(n) is None]
    if unknown:
        raise UserError(f"prune ratios name {unknown}, which are not weights of the model.",
                        "use conv weight names (compress.act.prunable_convs lists them).")
    if any(not 0 <= r < 1 for r in ratios.values()):
        raise UserError("prune ratios must be in [0, 1).", "use e.g. 0.5 for half the "
                        "output channels.")
    pruned, _, _ = Pruner("l1_norm").prune(program, scope, params=list(ratios),
                                           ratios=list(ratios.values()), place=place,
                                           only_graph=False)
    return pruned
