"""Program rewrites that let Paddle Inference 2.6.2's oneDNN INT8 passes run a quantized model.

Found on paddle 2.6.2 (oneDNN 3.2.1) with the ResNet-style CNN of ``models.vision``: when a
``pool2d`` reads the output of a residual block (``relu(conv(x) + shortcut)``), the INT8 passes
fuse the add into the conv as a residual sum. That conv then writes **s8** (the dtype of the
signed shortcut it sums into), while the INT8 ``pool2d`` was planned for **u8** (a ReLU output),
and creating its primitive fails at the first ``run()`` with "could not create a descriptor
for a pooling forward propagation primitive". Every batch size and thread count fails;
plain oneDNN fp32 runs the same program fine.

The fix is what Paddle's own ``cpu_quantize_placement_pass`` offers: an op with the attribute
``skip_quant = 1`` is left in fp32. We set it on exactly those pool ops (a pool fed, through
activations, by an ``elementwise_add``). The convolutions around them stay INT8; the pool runs
in fp32 behind one dequantize, which costs little (it is one small tensor per pool) and keeps
the model usable with a plain ``config.enable_mkldnn_int8()`` anywhere it is deployed.
"""
from __future__ import annotations

from pathlib import Path

# Ops that pass a tensor through without changing which op "produced" it for our purpose.
_PASS_THROUGH = frozenset({"relu", "relu6", "leaky_relu", "hard_swish", "swish", "silu",
                           "gelu", "sigmoid", "hard_sigmoid", "quantize_linear",
                           "dequantize_linear", "fake_quantize_dequantize_abs_max",
                           "fake_quantize_dequantize_moving_average_abs_max"})
_SKIP_QUANT_OPS = frozenset({"pool2d"})


def _input_names(op: object) -> list[str]:
    return [n for v in op.inputs for n in v.arguments]  # type: ignore[attr-defined]


def residual_pools(program: object) -> list[tuple[int, object]]:
    """(index, op) of the pool ops that read a residual sum (see the module docstring)."""
    found = []
    for block in program.blocks:  # type: ignore[attr-defined]
        producer: dict[str, object] = {}
        for index, op in enumerate(block.ops):
            if op.type in _SKIP_QUANT_OPS:
                names = [n for v in op.inputs if v.parameter == "X" for n in v.arguments]
                src = producer.get(names[0]) if names else None
                hops = 0
                while src is not None and src.type in _PASS_THROUGH and hops < 8:
                    ins = [n for v in src.inputs if v.parameter in ("X", "x") for n in
                           v.arguments] or _input_names(src)
                    src = producer.get(ins[0]) if ins else None
                    hops += 1
                if src is not None and src.type == "elementwise_add":
                    found.append((index, op))
            for v in op.outputs:
                for name in v.arguments:
                    producer[name] = op
    return found


def apply_onednn_int8_fixes(model_file: str | Path) -> list[str]:
    """Rewrite ``model_file`` in place; return one line per change (empty: unchanged)."""
    from paddleopt.artifact.program import framework_pb2, read_program

    pb2 = framework_pb2()
    model_file = Path(model_file)
    program = read_program(model_file)
    changes = []
    for index, op in residual_pools(program):
        attr = next((a for a in op.attrs if a.name == "skip_quant"), None)
        if attr is None:
            attr = op.attrs.add()
            attr.name = "skip_quant"
            attr.type = pb2.AttrType.INT
        elif attr.i == 1:
            continue
        attr.i = 1
        out = next((n for v in op.outputs for n in v.arguments), "?")
        changes.append(f"{op.type} #{index} ({out}) reads a residual sum: kept fp32 "
                       f"(skip_quant=1), oneDNN 3.2 cannot pool its s8 input to u8")
    if changes:
        tmp = model_file.with_suffix(".pdmodel.tmp")
        tmp.write_bytes(program.SerializeToString())
        tmp.replace(model_file)
    return changes
