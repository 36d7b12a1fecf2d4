"""Intermediate tensors of a model run: every op output of a Paddle program or ONNX graph.

Paddle inference programs run under the static-graph ``Executor`` (no IR passes), with every
intermediate variable in the fetch list; a quantized program's quantize/dequantize ops then
simulate INT8 in float, and its compute ops keep their fp32 output names, so tensors align by
name. ONNX models get every node output added as a graph output and run under ONNX Runtime
(paddle2onnx keeps the Paddle variable names of the ops it converts one to one).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.utils.errors import UserError

SKIP_OPS = ("feed", "fetch")
# Outputs that are not the op's result (batch_norm's saved statistics are uninitialised in an
# inference run; reshape's XShape holds no data).
SIDE_OUTPUTS = ("XShape", "SavedMean", "SavedVariance", "ReserveSpace", "MeanOut",
                "VarianceOut")
QDQ_SUFFIX = ".quantized.dequantized"  # PTQ's name for a tensor as the quantized op sees it


@dataclass
class Op:
    """One op of the reference graph: its type, float inputs and outputs (variable names)."""

    index: int
    type: str
    inputs: list[str]
    outputs: list[str]
    weight: str | None = None  # the conv/matmul parameter (what a ptq skip list names)


@dataclass
class Graph:
    """The ops of a model in run order, its feed names and its tensor names."""

    ops: list[Op]
    feeds: list[str]
    tensors: set[str] = field(default_factory=set)


def paddle_graph(model_file: Path) -> Graph:
    """The ops of a Paddle ProgramDesc (block 0), parameters dropped from their inputs."""
    from paddleopt.artifact.program import read_program

    block = read_program(model_file).blocks[0]
    params = {v.name for v in block.vars if v.persistable}
    ops, feeds = [], []
    for i, op in enumerate(block.ops):
        outs = [n for v in op.outputs for n in v.arguments]
        if op.type == "feed":
            feeds += outs
        if op.type in SKIP_OPS:
            continue
        ins = [n for v in op.inputs for n in v.arguments]
        weight = next((n for v in op.inputs if v.parameter in ("Filter", "Y")
                       for n in v.arguments if n in params), None)
        ops.append(Op(i, op.type, [n for n in ins if n not in params],
                      [n for v in op.outputs if v.parameter not in SIDE_OUTPUTS
                       for n in v.arguments if n not in params], weight))
    tensors = {n for op in ops for n in op.outputs}
    return Graph(ops, feeds, tensors)


def onnx_graph(model_file: Path) -> Graph:
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    ops = [Op(i, n.op_type, [x for x in n.input if x and x not in inits], list(n.output))
           for i, n in enumerate(model.graph.node)]
    feeds = [i.name for i in model.graph.input if i.name not in inits]
    return Graph(ops, feeds, {n for op in ops for n in op.outputs})


class Runner:
    """Runs one artifact and returns the named intermediate tensors of a batch."""

    def __init__(self, artifact: Any) -> None:
        self.artifact = artifact
        kind = artifact.kind
        if kind == "inference":
            self.graph = paddle_graph(artifact.file("model"))
        elif kind == "onnx":
            self.graph = onnx_graph(artifact.file("model"))
        else:
            raise UserError(f"debug compares Paddle inference and ONNX artifacts; "
                            f"'{artifact.path}' is a {kind} artifact.",
                            "pass the inference (or onnx) artifact it was converted from.")

    @contextmanager
    def session(self, names: list[str]) -> Iterator[Any]:
        """A callable ``run(feeds) -> {name: array}`` fetching ``names`` (missing: absent)."""
        if self.artifact.kind == "onnx":
            yield self._onnx_session(names)
            return
        from paddleopt.compress._common import static_mode
        from paddleopt.utils.imports import import_paddle

        paddle = import_paddle()
        with static_mode() as scope:  # own scope: two models with the same names
            exe = paddle.static.Executor(paddle.CPUPlace())
            model, params = Path(self.artifact.file("model")), self.artifact.file("params")
            if params and Path(params) == model.with_suffix(".pdiparams"):
                loaded = paddle.static.load_inference_model(str(model.with_suffix("")), exe)
            else:  # other file names: the older directory + file name form
                loaded = paddle.static.load_inference_model(
                    str(model.parent), exe, model_filename=model.name,
                    params_filename=Path(params).name if params else None)
            program, feed_names, _ = loaded
            # Both runs share one process: the Executor would otherwise read the weights of
            # whichever scope is current, so every run names its own.
            fetch = [n for n in names if program.global_block().has_var(n)]

            def run(feeds: list[np.ndarray]) -> dict[str, np.ndarray]:
                outs = exe.run(program, feed=dict(zip(feed_names, feeds)), fetch_list=fetch,
                               scope=scope, return_numpy=False)
                return {n: np.array(o) for n, o in zip(fetch, outs)
                        if o is not None and o._is_initialized()}

            yield run

    def _onnx_session(self, names: list[str]) -> Any:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(self.artifact.file("model")))
        have = {o.name for o in model.graph.output}
        wanted = [n for n in names if n in self.graph.tensors]
        model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in wanted if n not in have)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = 2
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        outputs = [o.name for o in sess.get_outputs()]
        feeds = [i.name for i in sess.get_inputs()]

        def run(batch: list[np.ndarray]) -> dict[str, np.ndarray]:
            return dict(zip(outputs, sess.run(outputs, dict(zip(feeds, batch)))))

        return run
