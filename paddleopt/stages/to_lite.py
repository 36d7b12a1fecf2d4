"""`to_lite`: Paddle inference model -> Paddle Lite naive-buffer model (.nb) for one target.

Steps: pre-check the ops against opt's kernel table for the target, apply the compat rewrite
(restores what ``paddle.jit.save(clip_extra=True)`` dropped and opt 2.13 needs, see
paddleopt/export/lite_compat.py), run ``paddle_lite_opt`` in a child process, parse the
result as a naive buffer (also in a child), and for x86 run it (in a child: first contact
with a new .nb) against Paddle Inference.

What can be verified here (an x86-64 machine):
- x86 fp32: converted and run; max abs diff vs Paddle Inference must be within tolerance.
- arm / opencl (fp32, int8, fp16): converted and parsed; the .nb cannot run on x86 (it loads
  and returns garbage), so there is no numeric check; the manifest says so.
- int8 on x86: refused. paddlelite 2.13rc0 turns PTQ models into x86 .nb files that return
  NaN/garbage (checked against Paddle Inference), so there is nothing valid to produce.

One target per stage: an artifact is one .nb with one set of kernels.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from paddleopt.artifact import Artifact, Manifest
from paddleopt.stages.base import Stage, StageContext
from paddleopt.stages.catalog import role_of
from paddleopt.utils.errors import ConfigError, UserError
from paddleopt.utils.grammar import a_an


@dataclass
class ToLiteConfig:
    """Attributes:
        target: arm (ARMv7/v8 CPUs), x86, or opencl (mobile GPUs, ARM CPU fallback).
        fp16: ARM fp16 kernels (ARMv8.2+ devices); arm only (opt ignores it for x86).
        compat_rewrite: restore what clip_extra dropped before opt (relu6.threshold, XShape
            outputs, ...). Turn off only to see opt's behaviour on the raw export.
        optimize_out: file name of the .nb inside the artifact (without .nb).
        tolerance: x86 only: max abs difference allowed between Lite and Paddle Inference,
            multiplied by the largest |output| when that exceeds 1.
        parity_samples: inputs compared on x86.
        timeout: seconds allowed for opt (and for each child run).
    """

    target: Literal["arm", "x86", "opencl"] = "arm"
    fp16: bool = False
    compat_rewrite: bool = True
    optimize_out: str = "model"
    tolerance: float = 1e-4
    parity_samples: int = 8
    timeout: float = 600.0

    def validate(self) -> tuple[str, str] | None:
        if self.fp16 and self.target != "arm":
            return (f"fp16 applies to target arm only (opt ignores it for {self.target})",
                    "set target: arm, or fp16: false.")
        name = self.optimize_out.removesuffix(".nb")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return (f"optimize_out must be a plain file name, got {self.optimize_out!r}",
                    "use e.g. optimize_out: model")
        if self.tolerance <= 0 or self.parity_samples < 1 or self.timeout <= 0:
            return ("tolerance and timeout must be > 0, parity_samples >= 1",
                    "use e.g. tolerance: 1.0e-4, parity_samples: 8")
        return None


class ToLiteStage(Stage):
    name = "to_lite"
    Config = ToLiteConfig
    consumes = ("inference",)
    produces = "lite"
    extras = ("lite",)

    def deploy_target(self) -> str:
        return self.config.target

    def check_upstream(self, upstream: list[Any], stage_id: str) -> None:
        quant = next((s for s in upstream if role_of(s.type) == "quantize"), None)
        if quant is not None and self.config.target == "x86":
            raise ConfigError(
                f"stages.{stage_id}: to_lite target x86 would convert the int8 model of stage "
                f"'{quant.stage_id}'; paddlelite 2.13rc0's x86 int8 .nb files return "
                f"NaN/garbage, so to_lite refuses them.",
                f"give stages.{stage_id} 'input: <your export stage id>' to convert the fp32 "
                f"model for x86, or use target: arm for the int8 model.")

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.deploy.check import check_artifact
        from paddleopt.export.lite_compat import CompatReport, rewrite_model_file
        from paddleopt.export.lite_opt import nb_ops, opt_version, optimize

        cfg: ToLiteConfig = self.config
        if src is None:
            raise UserError("to_lite needs an inference artifact as input.",
                            "put an export (or ptq) stage before it.")
        check = check_artifact(src, cfg.target)
        if not check.supported:
            raise UserError(f"Paddle Lite cannot convert '{src.path}' for {cfg.target}: "
                            f"{check.reason()}",
                            f"{check.fix} (details: paddleopt check {src.path} --target "
                            f"{cfg.target})")
        out_dir.mkdir(parents=True, exist_ok=True)
        nb_name = f"{cfg.optimize_out.removesuffix('.nb')}.nb"
        nb_file = out_dir / nb_name
        with tempfile.TemporaryDirectory(prefix="paddleopt_to_lite_") as tmp:
            model_file = src.file("model")
            report = CompatReport()
            if cfg.compat_rewrite:
                # Only the program is rewritten; opt reads the parent's params file directly.
                model_file = Path(tmp) / "model.pdmodel"
                report = rewrite_model_file(src.file("model"), model_file)
                if report.changed:
                    ctx.log.info("[%s] compat rewrite: %s", ctx.stage_id, report.summary())
            result = optimize(model_file, src.file("params"), nb_file, cfg.target,
                              enable_fp16=cfg.fp16, timeout=cfg.timeout,
                              known_unsupported=check.unsupported_ops)
            ops = nb_ops(nb_file, Path(tmp) / "nb_graph", timeout=cfg.timeout)

        precision = "fp16" if cfg.fp16 else src.manifest.precision
        manifest = src.manifest.derive(kind="lite", files={"model": nb_name},
                                       precision=precision)
        manifest.checks["lite"] = {
            "target": cfg.target, "opt_version": opt_version(),
            "nb_size_bytes": result.size_bytes, "opt_seconds": round(result.run.seconds, 2),
            "compat_rewrite": report.summary(), "optimized_ops": ops,
            # calib ops convert tensors between precisions (int8/fp16 <-> fp32); in an int8
            # model they show that opt picked int8 kernels.
            "calib_ops": ops.get("calib", 0),
            "int8_kernels": src.manifest.precision == "int8" and ops.get("calib", 0) > 0,
        }
        manifest.checks["nb_size_bytes"] = result.size_bytes
        if cfg.target == "x86":
            self._parity(src, nb_file, manifest, cfg)
        else:
            from paddleopt.export.parity import not_run

            not_run(manifest, "lite", "paddle_inference",
                    f"{a_an(cfg.target)} .nb cannot execute on this x86 machine; it was parsed as "
                    f"a naive buffer only.")
        return manifest

    @staticmethod
    def _parity(src: Artifact, nb_file: Path, manifest: Manifest, cfg: ToLiteConfig) -> None:
        from paddleopt.deploy.backends.lite import run_isolated
        from paddleopt.export import parity

        feeds, source = parity.sample_feeds(src, cfg.parity_samples)
        expected = parity.paddle_reference(src, feeds)
        # First run of a new .nb happens in a child: if Lite aborts, we report it.
        actual = run_isolated(nb_file, feeds, timeout=cfg.timeout)
        parity.measure("lite", "paddle_inference", expected, actual, feeds, source,
                       cfg.tolerance).enforce(manifest)
