"""One-shot commands for a model you already have: convert, quantize, optimize. No YAML.

Each builds a pipeline whose ``source`` is the inference folder and runs it (so every stage,
check and record is the pipeline's own):

- ``convert(DIR, to=["onnx", "lite-arm", "lite-x86"])``: one conversion stage per target,
  each reading the source, each checked for parity against Paddle Inference.
- ``quantize(DIR, calib=IMAGES_OR_NPZ, max_drop=0.01)``: accuracy-aware PTQ judged without
  labels: the INT8 model's outputs are compared with the fp32 model's on held-out real inputs
  (the calibration data after the samples used to calibrate); by default it must keep >= 99%
  top-1 agreement per output position (or mask IoU for probability maps, or a user metric).
  When no candidate fits, it says so and the fp32 model stays the answer (``kept: fp32``).
- ``optimize(DIR, calib, target="server-cpu"|"arm")``: check -> quantize -> conversions of
  what was kept -> (server-cpu) NNCF INT8 of the ONNX model and ``paddleopt deploy``'s
  choice among every candidate, written as ``deployment.json``; (arm) ``bench --matrix`` ->
  ``optimize.md`` / ``optimize.json`` in the work dir.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddleopt.oneshot_calib import calibration_spec
from paddleopt.utils.errors import StageError, UserError

log = logging.getLogger("paddleopt")

CONVERSIONS: dict[str, dict[str, Any]] = {
    "onnx": {"type": "to_onnx"},
    "lite-arm": {"type": "to_lite", "target": "arm"},
    "lite-x86": {"type": "to_lite", "target": "x86"},
    "lite-opencl": {"type": "to_lite", "target": "opencl"},
}
# What optimize converts for each deployment target (fp32 source; int8 where it runs).
OPTIMIZE_TARGETS: dict[str, dict[str, list[str]]] = {
    "server-cpu": {"fp32": ["onnx"], "int8": ["onnx"]},
    "arm": {"fp32": ["lite-arm", "lite-x86"], "int8": ["lite-arm"]},
}
EXIT_KEPT_FP32 = 3  # quantize: no INT8 candidate within the budget; the fp32 model stays


def _work_dir(model_dir: str | Path, work_dir: str | Path | None, what: str) -> Path:
    return Path(work_dir) if work_dir else Path("work_dirs") / f"{Path(model_dir).name}_{what}"


def _source(model_dir: str | Path, shapes: dict[str, Any] | None,
            preprocess: dict[str, Any] | None = None,
            inputs: str | Path | None = None) -> dict[str, Any]:
    src: dict[str, Any] = {"model_dir": str(model_dir)}
    if inputs and str(inputs).endswith(".npz"):
        src["inputs"] = str(inputs)  # real inputs for the conversions' parity checks
    if shapes:
        src["shapes"] = shapes
    if preprocess:
        src["preprocess"] = preprocess
    return src


def export_layer(layer: Any, out_dir: str | Path, input_spec: list[Any],
                 preprocess: dict[str, Any] | None = None, labels: list[str] | None = None,
                 shapes: dict[str, Any] | None = None, file_prefix: str = "inference") -> Any:
    """Save a live ``paddle.nn.Layer`` (your own, trained by your own loop) as an inference
    artifact: ``inference.pdmodel/.pdiparams``, a PaddleClas-style ``inference.yml`` when an
    image ``preprocess`` is given, and a ``manifest.json`` (io with shapes, preprocess,
    labels, sha256 of each file). Every command and stage then takes the folder.

    Args:
        input_spec: ``paddle.static.InputSpec`` list (use None/-1 for dynamic dims).
        preprocess: image preprocess (size, channels, mean, std, ...), see PIPELINE.md.
        shapes: input name -> shape or {min, opt, max} for dynamic dims.
    """
    from paddleopt.artifact import Artifact
    from paddleopt.artifact.preprocess_files import write_preprocess_file
    from paddleopt.artifact.source import open_model
    from paddleopt.utils.jit import save_layer
    from paddleopt.utils.versions import stack_versions

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layer.eval()
    save_layer(layer, str(out / file_prefix), input_spec=input_spec)
    for leftover in out.glob(f"{file_prefix}.pdiparams.info"):
        leftover.unlink()
    if preprocess:
        write_preprocess_file(out, {"type": "image", "channels": 3, **preprocess},
                              labels or [])
    art = open_model(out, shapes, preprocess)
    manifest = art.manifest
    # "foreign": not built by paddleopt's registry, so dynamic dims need stated shapes.
    manifest.model = {"source": "foreign", "exported_by": "export_layer",
                      "class": type(layer).__name__}
    if labels:
        manifest.labels = list(labels)
    if (out / "inference.yml").is_file():
        manifest.files["preprocess"] = "inference.yml"
    manifest.file_digests = {}
    manifest.versions = stack_versions()
    manifest.save(out)
    return Artifact.open(out)


def conversion_stages(targets: list[str], input_id: str = "source", prefix: str = ""
                      ) -> dict[str, dict[str, Any]]:
    unknown = [t for t in targets if t not in CONVERSIONS]
    if unknown:
        raise UserError(f"unknown conversion target(s): {', '.join(unknown)}.",
                        f"use any of: {', '.join(CONVERSIONS)}.")
    return {f"{prefix}{t.replace('-', '_')}": {**CONVERSIONS[t], "input": input_id}
            for t in dict.fromkeys(targets)}


def convert(model_dir: str | Path, to: list[str], work_dir: str | Path | None = None,
            shapes: dict[str, Any] | None = None, overrides: list[str] | None = None,
            resume: bool = False, inputs: str | Path | None = None) -> Any:
    """Convert an inference folder to each of ``to``; returns the pipeline's RunResult.
    ``inputs``: an .npz of real inputs the parity checks use (default: random inputs)."""
    from paddleopt.stages.pipeline import plan, run

    config = {"name": f"{Path(model_dir).name}_convert",
              "work_dir": str(_work_dir(model_dir, work_dir, "convert")),
              "source": _source(model_dir, shapes, inputs=inputs),
              "stages": conversion_stages(to)}
    return run(plan(config, overrides), resume=resume, evaluate=False)


# -- quantize --------------------------------------------------------------------------------
@dataclass
class QuantizeResult:
    """What quantize decided. ``artifact`` is the INT8 folder, or None when the fp32 model
    was kept (``reason`` says why, ``best`` is the closest candidate)."""

    work_dir: Path
    source: Path
    artifact: Path | None
    kept: str  # "int8" | "fp32"
    metric: str
    max_drop: float
    score: float | None = None  # the kept INT8 model's agreement (or user metric)
    speedup: float | None = None
    reason: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}

    def describe(self) -> str:
        lines = []
        for c in self.candidates:
            acc = c.get("accuracy")
            lines.append(f"  {c.get('name', '?'):<18} {c.get('status', '?'):<10} "
                         f"{self.metric} {'-' if acc is None else f'{acc:.4f}'}  "
                         f"{c.get('speedup_vs_fp32', '-')}x  {c.get('reason', '')}")
        if self.kept == "int8":
            head = (f"INT8 kept: {self.metric} {self.score:.4f} vs fp32 (budget: >= "
                    f"{1 - self.max_drop:.4f}), {self.speedup}x the fp32 speed at batch 1 "
                    f"-> {self.artifact}")
        else:
            head = (f"INT8 not kept: {self.reason}\nthe fp32 model stays the answer: "
                    f"{self.source}")
        return "\n".join([*lines, head])


def ptq_stage(model_dir: str | Path, calib: str | Path, max_drop: float,
              metric: str | None, count: int | None, thorough: bool, distill: int = 0
              ) -> dict[str, Any]:
    from paddleopt.artifact.program import find_model_files
    from paddleopt.stages._ptq.layers import has_activation_matmuls

    if not Path(model_dir).is_dir():
        raise UserError(f"'{model_dir}' is not a folder.",
                        "pass the Paddle inference folder (.pdmodel + .pdiparams).")
    model_file = find_model_files(Path(model_dir))[0]
    calibration, heldout = calibration_spec(calib, count)
    candidates: list[dict[str, Any]] = [{"algo": "hist"}, {"algo": "mse"}, {"algo": "avg"}]
    if has_activation_matmuls(model_file):
        candidates.append({"algo": "hist", "onednn_int8_ops": ["fc"]})
    if thorough:  # per-layer sensitivity: one PTQ run per convolution (minutes on big models)
        candidates += [{"algo": "hist", "skip_sensitive": 1}, {"algo": "hist",
                                                              "skip_sensitive": 3}]
    extra: dict[str, Any] = {}
    if distill:  # quant-aware distillation from the fp32 model (stages/qat_distill.py)
        candidates.append({"qat_distill": True})
        # measured beside PTQ, not only when PTQ misses: the fastest within budget is kept
        extra.update(distill={"steps": distill}, search="all")
    return {**extra, "calibration": calibration,
            "evaluation": {"source": "agreement", "count": heldout,
                           **({"metric": metric} if metric else {})},
            "max_accuracy_drop": max_drop, "candidates": candidates,
            "latency": {"batch_size": 1, "rounds": 2}}


def quantize(model_dir: str | Path, calib: str | Path, work_dir: str | Path | None = None,
             max_drop: float = 0.01, shapes: dict[str, Any] | None = None,
             metric: str | None = None, count: int | None = None, thorough: bool = False,
             overrides: list[str] | None = None, resume: bool = False,
             distill: int = 0) -> QuantizeResult:
    """Accuracy-aware INT8 of an inference folder against its own fp32 outputs."""
    from paddleopt.stages.pipeline import plan, run

    work = _work_dir(model_dir, work_dir, "quantize")
    config = {"name": f"{Path(model_dir).name}_quantize", "work_dir": str(work),
              "source": _source(model_dir, shapes, inputs=calib),
              "stages": {"ptq": ptq_stage(model_dir, calib, max_drop, metric, count,
                                          thorough, distill)}}
    the_plan = plan(config, overrides)
    ptq_cfg = the_plan.steps[0].stage.config
    name = ptq_cfg.evaluation.metric or "fp32 agreement"
    budget = ptq_cfg.max_accuracy_drop
    try:
        art = run(the_plan, resume=resume, evaluate=False).artifacts["ptq"]
    except StageError as exc:
        if "no PTQ candidate fits" not in exc.message:
            raise
        record = work / ".01_ptq.tmp" / "candidates.json"
        cands = _candidates(record)
        return QuantizeResult(work, Path(model_dir), None, "fp32", name, budget,
                              reason=f"no INT8 candidate keeps {name} >= {1 - budget:.4f} "
                                     f"(best: {_best(cands)}); details: {record}",
                              candidates=cands)
    m = art.manifest.metrics
    return QuantizeResult(work, Path(model_dir), art.path, "int8",
                          m.get("accuracy_metric", name), budget, score=m.get("accuracy"),
                          speedup=m.get("speedup_vs_fp32"), candidates=m.get("candidates", []))


def _candidates(record: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads(record.read_text(encoding="utf-8")).get("candidates", []))
    except (OSError, ValueError):
        return []


def _best(cands: list[dict[str, Any]]) -> str:
    scored = [c for c in cands if c.get("accuracy") is not None]
    if not scored:
        return "none ran"
    top = max(scored, key=lambda c: c["accuracy"])
    return f"{top.get('name')} at {top['accuracy']:.4f}"


# -- optimize --------------------------------------------------------------------------------
def optimize(model_dir: str | Path, calib: str | Path, target: str = "server-cpu",
             work_dir: str | Path | None = None, max_drop: float = 0.01,
             shapes: dict[str, Any] | None = None, metric: str | None = None,
             count: int | None = None, thorough: bool = False,
             batch_sizes: list[int] | None = None, threads: int | None = None,
             iters: int = 50, overrides: list[str] | None = None,
             progress: Any = None, distill: int = 0,
             deploy: dict[str, Any] | None = None) -> dict[str, Any]:
    """check -> accuracy-aware ptq -> conversions -> (server-cpu) NNCF int8 + deploy, (arm)
    bench matrix -> optimize.md/.json. ``deploy``: ``DeployRequest`` fields for server-cpu
    (rounds, seconds, threads, min_agreement, ...)."""
    from paddleopt import api
    from paddleopt.deploy.check import check_artifact, normalize_target
    from paddleopt.stages.pipeline import plan, run

    if target not in OPTIMIZE_TARGETS:
        raise UserError(f"unknown --target '{target}'.",
                        f"use one of: {', '.join(OPTIMIZE_TARGETS)}.")
    say = progress or (lambda text: log.info("%s", text))
    work = _work_dir(model_dir, work_dir, "optimize")
    wanted = OPTIMIZE_TARGETS[target]
    source = api.open_artifact(model_dir, shapes)
    checks = {}
    for conv in dict.fromkeys([*wanted["fp32"], *wanted["int8"]]):
        result = check_artifact(source, normalize_target(CONVERSIONS[conv].get("target",
                                                                               "onnx")))
        checks[conv] = result.to_dict()
        say(result.describe())
    convertible = [c for c in wanted["fp32"] if checks[c]["supported"]]

    say("quantize: accuracy-aware PTQ against the fp32 outputs")
    quant = quantize(model_dir, calib, work / "quantize", max_drop, shapes, metric, count,
                     thorough, overrides, distill=distill)
    say(quant.describe())

    stages = conversion_stages(convertible, "source", "fp32_")
    source_dict = _source(model_dir, shapes, inputs=calib)
    if quant.artifact is not None:
        int8_targets = [c for c in wanted["int8"] if checks[c]["supported"]]
        stages.update(conversion_stages(int8_targets, "source", "int8_"))
    conversions_dir = work / "deploy"
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    if stages:
        fp32_stages = {k: v for k, v in stages.items() if k.startswith("fp32_")}
        if fp32_stages:
            config = {"name": "fp32", "work_dir": str(conversions_dir / "fp32"),
                      "source": source_dict, "stages": fp32_stages}
            results["fp32"] = run(plan(config), evaluate=False)
        int8_stages = {k: v for k, v in stages.items() if k.startswith("int8_")}
        if int8_stages and quant.artifact is not None:
            config = {"name": "int8", "work_dir": str(conversions_dir / "int8"),
                      "source": {"model_dir": str(quant.artifact)}, "stages": int8_stages}
            try:
                results["int8"] = run(plan(config), evaluate=False)
            except StageError as exc:  # e.g. the int8 ONNX file disagrees: the rest stands
                say(f"int8 conversions failed, left out: {exc.message}")
                failed["int8"] = exc.message
    extra = [str(a.path) for r in results.values() for a in r.artifacts.values()]
    if quant.artifact is not None:
        extra.append(str(quant.artifact))
    summary = {"model_dir": str(model_dir), "target": target, "work_dir": str(work),
               "checks": checks, "quantize": quant.to_dict(),
               "conversions": {k: {sid: str(a.path) for sid, a in r.artifacts.items()}
                               for k, r in results.items()},
               "conversions_failed": failed}
    work.mkdir(parents=True, exist_ok=True)
    if target == "server-cpu":
        from paddleopt.oneshot_server import deploy_server_cpu

        fp32_onnx = results["fp32"].artifacts.get("fp32_onnx") if "fp32" in results else None
        summary.update(deploy_server_cpu(source, calib, count, fp32_onnx, extra, work,
                                         batch_sizes, threads, deploy or {}, say))
        table = summary["deploy_table"]
    else:
        say("bench: every backend x precision side by side")
        matrix = api.bench_matrix(model_dir, batch_sizes=batch_sizes or [1], threads=threads,
                                  iters=iters, warmup=3, max_seconds=3.0,
                                  artifacts=extra, shapes=_opt_shapes(source))
        summary["bench"] = matrix
        table = ["## Benchmark (bench --matrix)", "", *api.matrix_table(matrix["rows"]), ""]
        table += [f"- not run here: {item['artifact']}: {item['reason']}"
                  for item in matrix.get("skipped", [])]
    (work / "optimize.json").write_text(json.dumps(summary, indent=2, default=str),
                                        encoding="utf-8")
    (work / "optimize.md").write_text(render(summary, quant, table), encoding="utf-8")
    return summary


def _opt_shapes(source: Any) -> dict[str, Any] | None:
    """The source's recorded shapes, for sibling artifacts that do not record them."""
    out = {s.name: {"min": s.min_shape, "opt": s.opt_shape, "max": s.max_shape}
           for s in source.manifest.io.inputs if s.opt_shape}
    return out or None


def render(summary: dict[str, Any], quant: QuantizeResult, table: list[str]) -> str:
    lines = [f"# paddleopt optimize: {summary['model_dir']}", "",
             f"target: {summary['target']}", "", "## Deployability"]
    for conv, result in summary["checks"].items():
        ok = "deployable" if result["supported"] else "NOT deployable: " + "; ".join(
            result.get("problems") or result.get("unsupported_ops") or [])
        lines.append(f"- {conv}: {ok}")
    lines += ["", "## INT8", "", "```", quant.describe(), "```", "", "## Conversions"]
    for kind, convs in summary["conversions"].items():
        for sid, path in convs.items():
            lines.append(f"- {kind} {sid}: {path}")
    for kind, why in summary.get("conversions_failed", {}).items():
        lines.append(f"- {kind}: failed, left out: {why}")
    lines += ["", *table]
    return "\n".join(lines) + "\n"
