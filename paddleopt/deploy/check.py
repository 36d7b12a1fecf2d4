"""Deployability pre-check: which of a model's operators a target cannot run, before converting.

Targets: ``onnx`` (paddle2onnx's converter table) and the Paddle Lite targets ``arm``, ``x86``,
``opencl`` (opt's own kernel table, read from ``paddle_lite_opt --print_supported_ops``).
The check reads the ProgramDesc only; it never runs a converter on the model, so it is safe on
models that would crash one.

How to read a result (also in docs/EXPORT.md):

* ``unsupported_ops``: op types with no converter/kernel. The conversion will fail.
* ``problems``: other blockers we know of (LoD inputs for ONNX, int8 on Lite x86, ops
  opt crashes on). ``supported`` is true only when both lists are empty.
* ``notes``: things that will work but that you should know (the compat rewrite to_lite will
  apply, ops that Lite must fuse away, a quantization format).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from paddleopt.utils.errors import UserError
from paddleopt.utils.jit import save_layer
from paddleopt.utils.grammar import a_an

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact

LITE_TARGETS = ("arm", "x86", "opencl")
TARGETS = ("onnx", *LITE_TARGETS)
_ALIASES = {f"lite-{t}": t for t in LITE_TARGETS} | {f"lite:{t}": t for t in LITE_TARGETS}

# Fake-quant ops written by PaddleSlim without onnx_format (paddle2onnx has no converter).
FAKE_QUANT_PREFIXES = ("fake_quantize", "fake_dequantize", "fake_channel_wise")
QDQ_OPS = ("quantize_linear", "dequantize_linear")


@dataclass
class CheckResult:
    target: str
    supported: bool
    unsupported_ops: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)  # every op type of the model
    tool: str = ""  # what the op table came from, with version
    fix: str = ""  # what to do when not supported

    def reason(self) -> str:
        """One line: why the target cannot take the model (empty when it can)."""
        parts = ([f"unsupported ops: {', '.join(self.unsupported_ops)}"]
                 if self.unsupported_ops else []) + self.problems
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """Human-readable report for the CLI."""
        verdict = "deployable" if self.supported else "NOT deployable"
        lines = [f"{self.target}: {verdict} ({len(self.ops)} op types; checked against "
                 f"{self.tool})"]
        if self.unsupported_ops:
            lines.append(f"  unsupported ops: {', '.join(self.unsupported_ops)}")
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        if not self.supported and self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


def normalize_target(target: str) -> str:
    name = _ALIASES.get(target.lower(), target.lower())
    if name not in TARGETS:
        raise UserError(f"unknown deployment target '{target}'.",
                        f"use one of: {', '.join(TARGETS)}.")
    return name


# -- entry points ----------------------------------------------------------------------------

def check_artifact(artifact: Artifact, target: str) -> CheckResult:
    """Check an inference artifact (a Paddle program) against ``target``."""
    from paddleopt.artifact.program import read_program

    target = normalize_target(target)
    if artifact.kind == "checkpoint" and artifact.manifest.model.get("arch") \
            and artifact.manifest.io.inputs:
        # The program export will write: op types do not depend on the weights.
        program = untrained_program(artifact.manifest.model, artifact.manifest.io.inputs)
        result = check_program(program, target)
        result.notes.append("checked the program `export` writes from this checkpoint "
                            "(clip_extra: true); check the inference artifact after ptq/qat "
                            "for int8.")
        return result
    if artifact.kind != "inference":
        hint = {"checkpoint": "export it first (stage 'export') and check the inference "
                              "artifact.",
                "onnx": "it is already converted; check its parent inference artifact.",
                "lite": "it is already converted; check its parent inference artifact."}
        raise UserError(f"the pre-check reads Paddle programs, but '{artifact.path}' is a "
                        f"{artifact.kind} artifact.", hint.get(artifact.kind, ""))
    program = read_program(artifact.file("model"))
    lod = [s.name for s in artifact.manifest.io.inputs if s.lod_level > 0]
    return check_program(program, target, precision=artifact.manifest.precision,
                         lod_inputs=lod)


def check_program(program: Any, target: str, precision: str = "fp32",
                  lod_inputs: list[str] | None = None) -> CheckResult:
    """Check a ``framework_pb2.ProgramDesc`` against ``target``."""
    from paddleopt.artifact.program import op_types

    target = normalize_target(target)
    ops = op_types(program)
    if target == "onnx":
        return _check_onnx(ops, lod_inputs or [])
    return _check_lite(program, ops, target, precision)


# -- ONNX (paddle2onnx) ----------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def paddle2onnx_ops() -> frozenset[str]:
    """paddle2onnx's converter table (its C++ ``get_all_supported_operators``)."""
    from paddleopt.utils.imports import import_paddle, require_extra

    require_extra("onnx", "the ONNX pre-check")
    import_paddle()  # paddle2onnx imports paddle; keep the zlib-before-paddle order
    from paddle2onnx.utils import get_all_supported_operators

    return frozenset(get_all_supported_operators())


def _check_onnx(ops: list[str], lod_inputs: list[str]) -> CheckResult:
    from paddleopt.utils.versions import package_version

    table = paddle2onnx_ops()
    unsupported = [op for op in ops if op not in table]
    problems, notes = [], []
    fake = [op for op in ops if op.startswith(FAKE_QUANT_PREFIXES)]
    if fake:
        problems.append(
            f"quantized with PaddleSlim's fake-quant ops ({', '.join(fake)}), which paddle2onnx "
            f"cannot export. Re-run PTQ/QAT with onnx_format: true: it writes quantize_linear/"
            f"dequantize_linear, exported as ONNX QuantizeLinear/DequantizeLinear (QDQ).")
    if any(op in QDQ_OPS for op in ops):
        notes.append("quantized in ONNX format: exported as QDQ (QuantizeLinear/"
                     "DequantizeLinear, opset >= 13; paddle2onnx raises a lower opset_version).")
    if lod_inputs:
        problems.append(f"inputs {', '.join(lod_inputs)} are LoD tensors (variable-length "
                        f"sequences); ONNX has no LoD.")
    notes.append("an op may also need a minimum opset; paddle2onnx raises opset_version "
                 "automatically when it does (to_onnx records the opset actually used).")
    if fake:
        fix = "re-run ptq (or qat) with onnx_format: true, then to_onnx."
    elif lod_inputs:
        fix = "deploy this model with paddle_inference (LoD inputs are Paddle-only)."
    else:
        fix = ("replace the unsupported ops in the model, or deploy with paddle_inference / "
               "lite.")
    return CheckResult("onnx", not unsupported and not problems, unsupported, problems, notes,
                       ops, f"paddle2onnx {package_version('paddle2onnx')}", fix)


# -- Paddle Lite -----------------------------------------------------------------------------

def _check_lite(program: Any, ops: list[str], target: str, precision: str) -> CheckResult:
    from paddleopt.export.lite_compat import check_program as compat_check
    from paddleopt.export.lite_opt import opt_version, supported_ops
    from paddleopt.utils.imports import require_extra

    require_extra("lite", "the Paddle Lite pre-check")
    table = supported_ops(target)
    unsupported = [op for op in ops if op not in table.ops]
    problems: list[str] = []
    notes: list[str] = []
    # kUnk-only ops have no kernel for the target: opt must remove or fuse them (dropout,
    # fake-quant ops are handled by its passes). Worth knowing when opt then fails.
    unk_only = [op for op in ops if table.ops.get(op) == ["kUnk"]]
    if unk_only:
        notes.append(f"no {target} kernel, opt must fuse or remove: {', '.join(unk_only)}")
    crashes = _known_crashes(program)
    problems += crashes
    int8_x86 = precision == "int8" and target == "x86"
    if int8_x86:
        problems.append("int8 .nb files for x86 return NaN/garbage with paddlelite 2.13rc0 "
                        "(checked against Paddle Inference); to_lite refuses them. Convert "
                        "the fp32 model for x86, or target arm for int8.")
    elif precision == "int8":
        notes.append(f"int8 on {target}: converted with int8 kernels, but this x86 machine "
                     f"cannot run the result, so there is no parity check.")
    compat = compat_check(program)
    if compat.changed:
        fixed = ", ".join(f"{k} x{v}" for k, v in compat.summary().items())
        notes.append(f"to_lite's compat rewrite will restore what clip_extra dropped: {fixed}")
    if unsupported:
        fix = (f"replace the ops without {a_an(target)} kernel, pick another target, or "
               f"deploy with paddle_inference / onnxruntime.")
    elif int8_x86:
        fix = ("convert the fp32 model for x86 (run to_lite on the export, before ptq), or use "
               "target: arm for the int8 model.")
    elif crashes:
        fix = "change the model as the problem says, then export again."
    else:
        fix = ""
    return CheckResult(target, not unsupported and not problems, unsupported, problems, notes,
                       ops, f"paddle_lite_opt {opt_version()} --valid_targets={target}", fix)


def _known_crashes(program: Any) -> list[str]:
    """Patterns on which opt 2.13 crashes although every op is in its table."""
    found = []
    for block in program.blocks:
        for op in block.ops:
            if op.type == "layer_norm":
                args = {v.parameter: list(v.arguments) for v in op.inputs}
                if not args.get("Scale") or not args.get("Bias"):
                    found.append("layer_norm without Scale/Bias (e.g. F.layer_norm with no "
                                 "weight/bias) makes opt segfault; use nn.LayerNorm with its "
                                 "default affine parameters.")
                    return found
    return found


# -- before any work: the pipeline's model, untrained (paddleopt.stages.preflight) ----------

EXIT_NOT_DEPLOYABLE = 3  # `paddleopt check` exit code when a target cannot take the model


def untrained_program(model: dict[str, Any], inputs: list[Any], clip_extra: bool = True
                      ) -> Any:
    """Build ``model`` (a manifest model spec) with fresh weights, save it the way the export
    stage does and return its ProgramDesc. The op types do not depend on the weights, so this
    answers "can the trained model be converted?" before any training."""
    import tempfile

    from paddleopt.artifact.program import read_program
    from paddleopt.models.registry import build_model
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    layer = build_model(model)
    layer.eval()
    specs = [paddle.static.InputSpec(list(s.shape), s.dtype, s.name) for s in inputs]
    with tempfile.TemporaryDirectory(prefix="paddleopt_check_") as tmp:
        save_layer(layer, f"{tmp}/model", input_spec=specs, clip_extra=clip_extra)
        return read_program(f"{tmp}/model.pdmodel")
