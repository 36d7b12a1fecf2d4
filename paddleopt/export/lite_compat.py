"""Restore what ``paddle.jit.save(clip_extra=True)`` dropped and Paddle Lite 2.13 ``opt`` needs.

Paddle 2.6 marks some attributes and outputs as "extra" (needed only by training or by
particular kernels) and ``jit.save`` removes them by default. Paddle Inference does not miss
them, but Lite 2.13 reads some unconditionally when it loads a program (each checked by
converting a one-op model with opt 2.13rc0, raw and rewritten, for arm and x86):

- ``relu6.threshold``: Lite's ActivationOp calls ``GetAttr("threshold")`` -> abort "No
  attributes called threshold found for relu6".
- ``swish.beta``: the same code path, ``GetAttr("beta")``.
- the ``XShape`` output of ``flatten_contiguous_range``: SIGSEGV with no message.
- ``instance_norm``'s ``SavedMean``/``SavedVariance`` outputs: abort "Check failed:
  is_dispensable || is_have_output".

Also restored, although opt 2.13rc0 converts without them, so that the program matches what
``clip_extra=False`` writes: ``XShape`` of flatten2/reshape2/transpose2/squeeze2/unsqueeze2
and dropout's ``Mask`` output with its ``fix_seed``/``seed`` attributes.

Each fix restores one of these, only when it is missing, with the value Paddle itself uses
(relu6 is always 6.0 in Paddle 2.6, swish's beta always 1.0; seed/mask are unused at
inference). The pass edits the ProgramDesc protobuf only: parameters are untouched, and the
added outputs are intermediate tensors that no op reads, so Paddle Inference gives the same
results (the tests check it bit for bit).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# op type -> {attribute: (AttrType name, value)}: values Paddle 2.6 always uses for these ops.
ATTR_DEFAULTS: dict[str, dict[str, tuple[str, Any]]] = {
    "relu6": {"threshold": ("FLOAT", 6.0)},
    "swish": {"beta": ("FLOAT", 1.0)},
    "dropout": {"fix_seed": ("BOOLEAN", False), "seed": ("INT", 0)},
}

# op type -> [(output slot, how its var is shaped)]. "xshape": [0] + dims(X), dtype(X) -- what
# Paddle writes for XShape; "mask": dims(X), uint8 -- dropout's Mask; "per_instance": [-1],
# dtype(X) -- instance_norm's SavedMean/SavedVariance ([N*C] in Paddle, N is dynamic).
OUTPUT_DEFAULTS: dict[str, list[tuple[str, str]]] = {
    "flatten_contiguous_range": [("XShape", "xshape")],
    "flatten2": [("XShape", "xshape")],
    "reshape2": [("XShape", "xshape")],
    "transpose2": [("XShape", "xshape")],
    "squeeze2": [("XShape", "xshape")],
    "unsqueeze2": [("XShape", "xshape")],
    "dropout": [("Mask", "mask")],
    "instance_norm": [("SavedMean", "per_instance"), ("SavedVariance", "per_instance")],
}


@dataclass
class Change:
    """One edit made by the pass."""

    block: int
    op_index: int
    op_type: str
    kind: str  # "attr" | "output"
    name: str  # attribute name or output slot
    value: Any  # attribute value, or the new output var name

    def describe(self) -> str:
        what = f"attr {self.name}={self.value!r}" if self.kind == "attr" else \
            f"output {self.name} -> var '{self.value}'"
        return f"block {self.block} op #{self.op_index} {self.op_type}: added {what}"


@dataclass
class CompatReport:
    """What the pass changed; empty when the program needed nothing."""

    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        """'op.attr' / 'op.Output' -> how many ops got it (compact, for manifests and logs)."""
        counts: dict[str, int] = {}
        for c in self.changes:
            key = f"{c.op_type}.{c.name}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "summary": self.summary(),
                "changes": [asdict(c) for c in self.changes]}


# -- protobuf helpers ------------------------------------------------------------------------

def _pb2() -> Any:
    from paddleopt.artifact.program import framework_pb2

    return framework_pb2()


def _has_attr(op: Any, name: str) -> bool:
    return any(a.name == name for a in op.attrs)


def _slot_args(slots: Any, parameter: str) -> list[str]:
    for var in slots:
        if var.parameter == parameter:
            return list(var.arguments)
    return []


def _find_var(program: Any, block_idx: int, name: str) -> Any | None:
    """Look ``name`` up in the block and then its ancestors (sub-blocks see parent vars)."""
    while block_idx >= 0:
        block = program.blocks[block_idx]
        for var in block.vars:
            if var.name == name:
                return var
        block_idx = block.parent_idx
    return None


def _unique_name(program: Any, base: str) -> str:
    taken = {v.name for b in program.blocks for v in b.vars}
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def _set_attr(op: Any, name: str, type_name: str, value: Any) -> None:
    pb2 = _pb2()
    attr = op.attrs.add()
    attr.name = name
    attr.type = pb2.AttrType.Value(type_name)
    field_name = {"FLOAT": "f", "INT": "i", "BOOLEAN": "b", "STRING": "s", "LONG": "l"}[type_name]
    setattr(attr, field_name, value)


def _add_tensor_var(block: Any, name: str, dims: list[int], dtype: int) -> None:
    pb2 = _pb2()
    var = block.vars.add()
    var.name = name
    var.type.type = pb2.VarType.LOD_TENSOR
    var.type.lod_tensor.tensor.data_type = dtype
    var.type.lod_tensor.tensor.dims.extend(dims)
    var.type.lod_tensor.lod_level = 0
    var.persistable = False


def _input_dims_dtype(program: Any, block_idx: int, op: Any) -> tuple[list[int], int]:
    """dims and dtype of the op's X input; unknown rank -> [-1], fp32 (Lite only needs a var)."""
    pb2 = _pb2()
    names = _slot_args(op.inputs, "X")
    var = _find_var(program, block_idx, names[0]) if names else None
    if var is not None and var.type.type == pb2.VarType.LOD_TENSOR:
        tensor = var.type.lod_tensor.tensor
        return list(tensor.dims), tensor.data_type
    return [-1], pb2.VarType.FP32


# -- the fixes: each restores one thing on one op and returns what it did ---------------------

def restore_attrs(program: Any, block_idx: int, op_index: int, op: Any) -> list[Change]:
    """Add the attributes of ATTR_DEFAULTS that ``op`` lacks (relu6.threshold, swish.beta, ...)."""
    changes = []
    for name, (type_name, value) in ATTR_DEFAULTS.get(op.type, {}).items():
        if not _has_attr(op, name):
            _set_attr(op, name, type_name, value)
            changes.append(Change(block_idx, op_index, op.type, "attr", name, value))
    return changes


def restore_outputs(program: Any, block_idx: int, op_index: int, op: Any) -> list[Change]:
    """Add missing intermediate outputs (XShape, Mask, SavedMean...), vars shaped as Paddle's."""
    changes = []
    for slot, rule in OUTPUT_DEFAULTS.get(op.type, []):
        if _slot_args(op.outputs, slot):
            continue
        name = _add_output(program, block_idx, op, slot, rule)
        changes.append(Change(block_idx, op_index, op.type, "output", slot, name))
    return changes


def _add_output(program: Any, block_idx: int, op: Any, slot: str, rule: str) -> str:
    pb2 = _pb2()
    dims, dtype = _input_dims_dtype(program, block_idx, op)
    if rule == "xshape":
        dims = [0, *dims]
    elif rule == "mask":
        dtype = pb2.VarType.UINT8
    elif rule == "per_instance":
        dims = [-1]
    out_names = _slot_args(op.outputs, "Out") or _slot_args(op.outputs, "Y")
    name = _unique_name(program, f"{out_names[0] if out_names else op.type}.{slot.lower()}")
    _add_tensor_var(program.blocks[block_idx], name, dims, dtype)
    existing = next((v for v in op.outputs if v.parameter == slot), None)
    if existing is None:  # clip_extra removes the whole slot, not just its argument
        existing = op.outputs.add()
        existing.parameter = slot
    existing.arguments.append(name)
    return name


Fix = Callable[[Any, int, int, Any], list[Change]]
FIXES: tuple[Fix, ...] = (restore_attrs, restore_outputs)


# -- the pass ------------------------------------------------------------------------------

def rewrite_program(program: Any) -> CompatReport:
    """Apply every fix to every op of ``program`` (a framework_pb2.ProgramDesc), in place."""
    report = CompatReport()
    for block_idx, block in enumerate(program.blocks):
        for op_index, op in enumerate(block.ops):
            for fix in FIXES:
                report.changes.extend(fix(program, block_idx, op_index, op))
    return report


def check_program(program: Any) -> CompatReport:
    """What ``rewrite_program`` would change, without changing ``program``."""
    pb2 = _pb2()
    copy = pb2.ProgramDesc()
    copy.CopyFrom(program)
    return rewrite_program(copy)


def rewrite_model_file(src: str | Path, dst: str | Path) -> CompatReport:
    """Read the .pdmodel ``src``, apply the pass and write the result to ``dst``.

    ``dst`` is written even when nothing changed (a byte copy then), so callers can always
    hand ``dst`` to opt. Parameters live in .pdiparams and are not touched: the pass only adds
    attributes and intermediate outputs, never renames or drops a persistable var.
    """
    from paddleopt.artifact.program import read_program

    src, dst = Path(src), Path(dst)
    program = read_program(src)
    report = rewrite_program(program)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if report.changed:
        dst.write_bytes(program.SerializeToString())
    elif src.resolve() != dst.resolve():
        dst.write_bytes(src.read_bytes())
    return report
