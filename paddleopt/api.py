"""The Python API. Every CLI command is a thin call into one of these functions.

Use them from your own Paddle code too::

    from paddleopt import api
    result = api.run("configs/quickstart.yaml", overrides=["train.epochs=1"], resume=True)
    rows = api.bench(result.artifacts["export"].path, batch_sizes=[1, 32])
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from paddleopt.stages.catalog import stage_types
from paddleopt.utils.errors import UserError

# what `paddleopt compress` runs up to: stages that change the weights or quantize them
COMPRESS_TYPES = stage_types("compress", "quantize")


def plan(config: str | Path | dict, overrides: list[str] | None = None,
         nproc: int | None = None, ips: list[str] | None = None,
         stage_types: tuple[str, ...] | None = None) -> Any:
    """Validate a pipeline config (schema, stage configs, kind chain, extras, evaluation
    targets and their options) without running.

    ``nproc`` / ``ips``: plan the stages that train (of ``stage_types``, default all) to run
    in that many processes per node / on those nodes (``paddleopt.distributed.distribute``).
    """
    from paddleopt.stages.pipeline import plan as make_plan

    the_plan = make_plan(config, overrides)
    if nproc is not None or ips:
        from paddleopt.distributed.launch import distribute

        distribute(the_plan, nproc, ips, stage_types)
    return the_plan


def reuse_status(the_plan: Any) -> dict[str, str]:
    """Per stage id of a plan: "reuse" when `run --resume` would skip it (its finished folder
    matches), else "run: <why>" (not made yet, or what changed since it was made)."""
    from paddleopt.stages.pipeline import reuse_status as status

    return status(the_plan)


def run(config: str | Path | dict, overrides: list[str] | None = None, resume: bool = False,
        until: str | None = None, evaluate: bool = True, nproc: int | None = None,
        ips: list[str] | None = None, on_plan: Callable[[Any], None] | None = None) -> Any:
    """Plan, then run the pipeline; returns a RunResult (artifacts by stage id, report path).

    ``nproc`` / ``ips`` run every stage that trains (those with a ``fleet`` section) in that
    many processes per node / on those nodes, through ``paddle.distributed.launch``; the other
    stages run once, here (see docs/DISTRIBUTED.md). ``on_plan(plan)`` is called once the
    plan is validated, before any work (the CLI prints it).
    """
    return _run(config, overrides, nproc, ips, None, on_plan, resume=resume, until=until,
                evaluate=evaluate)


def run_until_type(config: str | Path | dict, overrides: list[str] | None, types: tuple[str, ...],
                   resume: bool = True, last: bool = False, nproc: int | None = None,
                   ips: list[str] | None = None) -> Any:
    """Run the stages up to the first (or last) stage whose type is in ``types``
    (``nproc``/``ips``: run the ones of those types that train distributed)."""

    def until(the_plan: Any) -> str:
        matches = [s.stage_id for s in the_plan.steps if s.type in types]
        if not matches:
            raise UserError(f"the pipeline has no {'/'.join(types)} stage.",
                            "add one under 'stages:' or use `paddleopt run`.")
        return matches[-1] if last else matches[0]

    return _run(config, overrides, nproc, ips, types, None, resume=resume, until=until,
                evaluate=False)


def _run(config: str | Path | dict, overrides: list[str] | None, nproc: int | None,
         ips: list[str] | None, stage_types: tuple[str, ...] | None,
         on_plan: Callable[[Any], None] | None, resume: bool,
         until: str | Callable[[Any], str] | None, evaluate: bool) -> Any:
    import logging

    from paddleopt.distributed.launch import check_not_externally_launched
    from paddleopt.stages.pipeline import run as run_plan

    if not logging.getLogger("paddleopt").handlers:
        from paddleopt.utils.logging import setup_logging

        setup_logging()
    check_not_externally_launched()
    the_plan = plan(config, overrides, nproc, ips, stage_types)
    if callable(until):
        until = until(the_plan)
    if on_plan is not None:
        on_plan(the_plan)
    return run_plan(the_plan, resume=resume, until=until, evaluate=evaluate)


def open_artifact(path: str | Path, shapes: dict[str, Any] | None = None) -> Any:
    """Open an artifact or a plain Paddle inference folder; ``shapes`` (input name ->
    shape or {min, opt, max}) sets the shapes of dynamic inputs for this use."""
    from paddleopt.artifact import Artifact

    art = Artifact.open(path)
    if shapes:
        from paddleopt.artifact.shapes import apply_shapes, parse_shapes

        apply_shapes(art.manifest, parse_shapes(shapes, "--shape"), "--shape")
    return art


def latest_artifact(work_dir: str | Path, kinds: tuple[str, ...] = ("inference",)) -> Any:
    """The last finished artifact of one of ``kinds`` in a work dir."""
    from paddleopt.artifact.workdir import stage_artifacts

    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        raise UserError(f"work dir '{work_dir}' does not exist.",
                        "run the pipeline first (paddleopt run -c CONFIG).")
    found = [a for a in stage_artifacts(work_dir) if a.kind in kinds]
    if not found:
        raise UserError(f"no finished {'/'.join(kinds)} artifact in '{work_dir}'.",
                        "run the pipeline first, or pass an ARTIFACT folder.")
    return found[-1]


def bench(artifact: str | Path, batch_sizes: list[int] | None = None,
          backend: str | None = None, options: dict[str, Any] | None = None,
          warmup: int = 10, iters: int = 200, max_seconds: float = 5.0,
          eval_samples: int | None = None, precision: str | None = None,
          artifacts: list[str | Path] | None = None,
          shapes: dict[str, Any] | None = None) -> list[dict]:
    """Latency percentiles, throughput, peak RSS, size and accuracy of one deployment.

    ``backend`` / ``precision`` pick the artifact that fits among ``artifact`` and the
    artifacts of the same model next to it (plus ``artifacts``): e.g. ``02_export`` with
    backend onnxruntime runs the work dir's ONNX file (see paddleopt.deploy.matrix).
    """
    from paddleopt.deploy.matrix import select
    from paddleopt.deploy.predictor import default_backend
    from paddleopt.report.evaluate import benchmark_rows

    art = open_artifact(artifact, shapes)
    # an early-exit artifact runs its own segments on every backend it has a format for
    chained = bool(art.manifest.early_exit) and precision in (None, art.manifest.precision)
    if (backend is not None or precision is not None) and not chained:
        art = select(art, backend, precision, artifacts)
        if shapes:
            art = open_artifact(art.path, shapes)
    art.verify()
    backend = backend or ("paddle_inference" if chained else default_backend(art.kind))
    cfg = bench_settings(batch_sizes, warmup, iters, max_seconds, eval_samples)
    return benchmark_rows(art, backend, options or {}, cfg)


def bench_settings(batch_sizes: list[int] | None, warmup: int, iters: int,
                   max_seconds: float, eval_samples: int | None) -> Any:  # EvaluateConfig
    """An EvaluateConfig for bench, checked like the config's ``evaluate:`` section (a batch
    size of 0 or 0 iterations is a user error, not a ZeroDivisionError after loading)."""
    from paddleopt.config.schema import parse
    from paddleopt.config.sections import EvaluateConfig

    try:
        return parse(EvaluateConfig, {
            "batch_sizes": list(batch_sizes or [1]), "warmup": warmup, "iters": iters,
            "max_seconds": max_seconds, "eval_samples": eval_samples}, path="bench")
    except UserError as exc:
        problem = exc.message.split(": ", 1)[-1].replace("evaluate.", "")
        raise UserError(f"bench: {problem}",
                        f"{exc.fix} (flags: --batch-size, --warmup, --iters, --max-seconds, "
                        f"--eval-samples).") from None


def bench_matrix(artifact: str | Path, batch_sizes: list[int] | None = None,
                 threads: int | None = None, warmup: int = 10, iters: int = 200,
                 max_seconds: float = 5.0, eval_samples: int | None = 1000,
                 artifacts: list[str | Path] | None = None, with_native: bool = True,
                 profile: str | Path | None = None, progress: Any = None,
                 backend: str | None = None, precision: str | None = None,
                 shapes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every backend x precision reachable from ``artifact``, measured side by side.

    Reachable: the artifact and the finished artifacts of the same model in its work dir
    (inference fp32/int8 on Paddle Inference with and without oneDNN, ONNX on ONNX Runtime,
    x86 .nb on Paddle Lite), plus ``artifacts``. ARM .nb files and the like are listed under
    ``skipped`` with the reason. ``artifact`` may also be a work dir. ``backend`` /
    ``precision`` keep only those rows. ``profile``: also write one trace per deployment
    (``<stem>.<variant>.json``) and return its top ops. ``progress(deployment)`` is called
    before each one.

    Returns:
        ``{"rows": [benchmark rows], "skipped": [{"artifact", "reason"}],
        "profiles": {variant: profile result or {"error": ...}}}``
    """
    from paddleopt.deploy.matrix import matrix
    from paddleopt.report.evaluate import benchmark_rows

    art = _artifact_or_work_dir(artifact)
    deployments, skipped = matrix(art, artifacts, threads, with_native)
    deployments = [d for d in deployments if (backend is None or d.backend == backend)
                   and (precision is None or d.precision == precision)]
    if not deployments:
        raise UserError(f"nothing in or next to '{art.path}' runs on this machine"
                        + (f" as {backend or ''} {precision or ''}".rstrip()
                           if backend or precision else "") + ".",
                        "convert the model (export, to_onnx, to_lite target: x86) first.")
    cfg = bench_settings(batch_sizes, warmup, iters, max_seconds, eval_samples)
    rows: list[dict] = []
    profiles: dict[str, Any] = {}
    for dep in deployments:
        if progress is not None:
            progress(dep)
        dep.artifact.verify()
        if shapes:
            from paddleopt.artifact.shapes import apply_shapes, parse_shapes

            apply_shapes(dep.artifact.manifest, parse_shapes(shapes, "--shape"), "--shape")
        for row in benchmark_rows(dep.artifact, dep.backend, dep.options, cfg, name=dep.name):
            row["note"] = dep.note
            rows.append(row)
        if profile is not None:
            out = Path(profile)
            trace = out.with_name(f"{out.stem}.{dep.name}{out.suffix or '.json'}")
            try:
                profiles[dep.name] = api_profile(dep.artifact.path, trace, backend=dep.backend,
                                                 options=dep.options,
                                                 batch_size=cfg.batch_sizes[0])
            except UserError as exc:  # lite: no profiler; the matrix still has its row
                profiles[dep.name] = {"error": exc.message}
    return {"rows": rows, "profiles": profiles,
            "skipped": [{"artifact": str(s.artifact.path), "reason": s.reason} for s in skipped]}


def _artifact_or_work_dir(path: str | Path) -> Any:
    """An artifact folder, or a work dir (then its last inference/onnx/lite artifact)."""
    from paddleopt.artifact.manifest import MANIFEST_NAME

    path = Path(path)
    if path.is_dir() and not (path / MANIFEST_NAME).is_file() \
            and not any(path.glob("*.pdmodel")) and not (path / "__model__").is_file():
        return latest_artifact(path, kinds=("inference", "onnx", "lite"))
    return open_artifact(path)


def matrix_table(rows: list[dict]) -> list[str]:
    """Markdown table of ``bench_matrix`` rows, with the p50 speed-up over ONNX Runtime fp32
    (or, without it, over the first row) at the same batch size."""
    head = ["variant", "backend", "precision", "batch", "threads", "oneDNN", "p50 ms",
            "p99 ms", "samples/s", "vs ref", "accuracy", "size KB", "artifact", "inputs"]
    refs: dict[int, float] = {}
    for row in rows:
        batch = row["batch_size"]
        if row["backend"] == "onnxruntime" and row["precision"] == "fp32":
            refs[batch] = row["latency_ms"]["p50"]
    for row in rows:
        refs.setdefault(row["batch_size"], row["latency_ms"]["p50"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        onednn = "-" if r["onednn"] is None else ("on" if r["onednn"] else "off")
        ratio = refs[r["batch_size"]] / r["latency_ms"]["p50"]
        lines.append("| " + " | ".join([
            r["variant"], r["backend"], r["precision"], str(r["batch_size"]),
            str(r["threads"] if r["threads"] is not None else "-"), onednn,
            f"{r['latency_ms']['p50']:.3f}", f"{r['latency_ms']['p99']:.3f}",
            f"{r['throughput_per_s']:.1f}", f"{ratio:.2f}x", acc,
            f"{r['size_bytes'] / 1024:.1f}", Path(r["artifact"]).name,
            " ".join(f"{k} {'x'.join(map(str, v))}"
                     for k, v in r.get("input_shapes", {}).items())]) + " |")
    ref = "ONNX Runtime fp32" if any(r["backend"] == "onnxruntime" and r["precision"] == "fp32"
                                     for r in rows) else f"'{rows[0]['variant']}'" if rows else ""
    lines.append(f"\nvs ref: p50 latency of {ref} at the same batch size / this row's "
                 f"(above 1 = faster).")
    return lines


def profile(artifact: str | Path, out_json: str | Path, backend: str | None = None,
            options: dict[str, Any] | None = None, batch_size: int = 1, iters: int = 20,
            top_k: int = 10, precision: str | None = None,
            artifacts: list[str | Path] | None = None) -> dict[str, Any]:
    """Profile ``iters`` runs of one deployment at ``batch_size``: writes a chrome trace
    (chrome://tracing, Perfetto) to ``out_json`` and returns the ``top_k`` op types by time
    (``paddleopt.deploy.bench.profile``). Paddle Inference, eager and ONNX Runtime; not lite.
    """
    from paddleopt.deploy.accuracy import eval_data
    from paddleopt.deploy.bench import profile as run_profile
    from paddleopt.deploy.matrix import select
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.report.evaluate import batch_feeds

    art = open_artifact(artifact)
    if backend is not None or precision is not None:
        art = select(art, backend, precision, artifacts)
    art.verify()
    predictor = load_predictor(art, backend, options)
    feeds = batch_feeds(predictor, eval_data(art, batch_size), batch_size)
    result = run_profile(predictor, feeds, out_json, top_k=top_k, iters=iters)
    result.update(artifact=str(art.path), backend=predictor.backend, batch_size=batch_size)
    return result


api_profile = profile  # bench_matrix has a parameter called profile


def check(artifact: str | Path, target: str) -> Any:
    """Deployability pre-check of an inference artifact for one target (onnx, arm, x86,
    opencl): the ops it cannot run and other known blockers, without converting anything.
    Returns a ``paddleopt.deploy.check.CheckResult`` (``supported``, ``unsupported_ops``,
    ``problems``, ``notes``, ``fix``)."""
    from paddleopt.deploy.check import check_artifact

    return check_artifact(open_artifact(artifact), target)


def check_config(config: str | Path | dict, overrides: list[str] | None = None,
                 targets: list[str] | None = None) -> list[Any]:
    """The pre-check before any training: the pipeline's model, untrained, exported to a
    temporary folder and checked for ``targets`` (default: the targets of the pipeline's
    to_onnx / to_lite stages, or all). Returns one CheckResult per target."""
    from paddleopt.stages.preflight import check_plan

    return check_plan(plan(config, overrides), targets)


def infer(artifact: str | Path, inputs: list[str], backend: str | None = None,
          options: dict[str, Any] | None = None, top_k: int = 1,
          preprocess: dict[str, Any] | None = None, char_dict: str | None = None
          ) -> list[dict]:
    """Predictions for raw inputs (image files or .npy arrays), using the manifest's
    preprocessing so no training config is needed. ``preprocess`` overrides entries of it for
    image files (e.g. ``{"invert": True}``, ``{"size": [32, 32]}``, mean/std); .npy/.npz
    inputs must already be preprocessed. Images whose brightness is unlike the training
    images' get a warning on the paddleopt logger (and in each result's ``warnings``).
    OCR outputs get OCR answers (``paddleopt.deploy.ocr_outputs``): a CTC recogniser's text
    (characters from ``char_dict``, PaddleOCR's keys file, or the folder's inference.yml), a
    text detector's boxes; classifiers keep ``predictions`` (top-k)."""
    import numpy as np

    from paddleopt.deploy.inputs import load_inputs
    from paddleopt.deploy.outputs import top_k_classes
    from paddleopt.deploy.predictor import load_predictor

    if top_k < 1:
        raise UserError(f"top_k is {top_k}; it must be >= 1.", "pass --top-k 1 or more.")
    artifact, backend, options = _deployed(artifact, backend, options)
    art = open_artifact(artifact).verify()
    predictor = load_predictor(art, backend, options)
    warnings: list[str] = []
    feeds, names = load_inputs(art, inputs, preprocess, warn=warnings.append)
    for line in warnings:
        logging.getLogger("paddleopt").warning("warning: %s", line)
    logits = np.asarray(predictor.run(feeds)[0])
    answers = _ocr_answers(art, logits, char_dict)
    if answers is not None:  # a recogniser's text / a detector's boxes, not top-k classes
        return [{"input": name, **answer,
                 "warnings": [w for w in warnings if w.startswith(f"{name}: ")]}
                for name, answer in zip(names, answers)]
    classes = int(np.prod(logits.shape[1:]))
    if top_k > classes:
        raise UserError(f"top_k is {top_k}, but the model scores {classes} classes.",
                        f"pass --top-k {classes} or less.")
    best = top_k_classes(logits.reshape(len(logits), -1), art.manifest.labels, top_k)
    return [{"input": name, "predictions": preds,
             "warnings": [w for w in warnings if w.startswith(f"{name}: ")]}
            for name, preds in zip(names, best)]


def _ocr_answers(art: Any, output: Any, char_dict: str | None) -> list[dict] | None:
    from paddleopt.deploy import ocr_outputs

    kind = ocr_outputs.kind_of(output)
    if kind == "map":
        return ocr_outputs.map_answers(output)
    if kind != "ctc":
        if char_dict:
            raise UserError(f"--dict is for text recognisers ([N, T, classes] outputs); this "
                            f"model outputs {list(output.shape)}.", "drop --dict.")
        return None
    keys = ocr_outputs.read_keys(char_dict) if char_dict else None
    if keys is None and art.manifest.model.get("character_dict_size"):
        from paddleopt.artifact.preprocess_files import read_character_dict

        keys = read_character_dict(art.path / art.manifest.model["preprocess_file"])
    charset = ocr_outputs.charset_for(output.shape[-1], list(keys)) if keys else None
    return ocr_outputs.ctc_answers(output, charset)


def serve(artifact: str | Path | None = None, ready: Any = None, **settings: Any) -> None:
    """Serve an artifact over HTTP until interrupted: /predict, /health, /metrics, /reload.

    ``settings`` are ``paddleopt.serve.server.ServeConfig`` fields (host, port, workers,
    max_batch_size, max_wait_ms, watch, backend, options, ...). ``ready(url, service)`` is
    called once the port is bound. For a server in a background thread (tests, notebooks)
    use ``paddleopt.serve.server.Service`` + ``BackgroundServer``.
    """
    from paddleopt.config.schema import parse
    from paddleopt.serve.server import ServeConfig
    from paddleopt.serve.server import serve as run_server

    if artifact is not None:
        artifact, backend, options = _deployed(artifact, settings.get("backend"),
                                               settings.get("options"))
        settings.update(backend=backend, options=options or {})
    config = parse(ServeConfig, settings, path="serve")
    run_server(artifact, config, ready)


def _deployed(artifact: str | Path, backend: str | None, options: dict[str, Any] | None
              ) -> tuple[Path, str | None, dict[str, Any] | None]:
    """The artifact/backend/options a ``deployment.json`` chose for ``artifact`` (see
    paddleopt.deploy.auto.resolve); unchanged when there is none or the caller chose."""
    from paddleopt.deploy.auto import resolve

    path, backend, options, used = resolve(artifact, backend, options)
    if used is not None:
        import logging

        logging.getLogger("paddleopt").info("using %s: %s on %s %s", used, path.name, backend,
                                            options)
    return path, backend, options


def deploy(artifact: str | Path, out: str | Path | None = None,
           artifacts: list[str | Path] | None = None, progress: Any = None,
           **request: Any) -> dict[str, Any]:
    """Measure every deployment of ``artifact`` (and the artifacts of the same model next to
    it) on the target, pick the fastest within the accuracy budget for the workload, and
    write ``deployment.json`` (default: next to the artifact, in its work dir) that
    ``infer`` and ``serve`` then use. ``request``: ``paddleopt.deploy.auto.DeployRequest``
    fields (target, workload, batch_size, min_agreement, max_accuracy_drop, threads, ...).
    """
    from paddleopt.config.schema import parse
    from paddleopt.deploy.auto import DEPLOYMENT_FILE, DeployRequest
    from paddleopt.deploy.auto import deploy as run_deploy

    req = parse(DeployRequest, request, path="deploy")
    art = open_artifact(artifact)
    out = Path(out) if out is not None else art.path.resolve().parent / DEPLOYMENT_FILE
    return run_deploy(art, req, out, artifacts, progress)


def report(work_dir: str | Path) -> Path:
    from paddleopt.report.render import render_markdown

    return render_markdown(Path(work_dir))


def doctor() -> dict[str, Any]:
    from paddleopt.utils.doctor import collect

    return collect()


def debug(a: str | Path, b: str | Path, inputs: list[str], out_dir: str | Path | None = None,
          count: int = 32, fallback: bool | None = None, target: float = 0.8,
          max_layers: int = 4, metric: str | None = None, log: Any = None,
          holdout: list[str] | None = None) -> Any:
    """Where artifact ``b`` starts to disagree with ``a`` (the reference), layer by layer, on
    real ``inputs`` (image files or folders, preprocessed as ``a`` records, or .npy/.npz
    tensors; the first ``count`` samples). For an INT8 ``b`` of an fp32 ``a``, also the
    ops to keep fp32, searched on ``inputs`` and verified by re-quantizing and measuring on
    ``holdout`` (every sample; None: the second half of ``inputs``), as ptq settings. See
    docs/DEBUG.md."""
    from paddleopt.debug import debug as run_debug

    if count < 1:
        raise UserError(f"count is {count}; it must be >= 1.", "pass --count 8 or more.")
    art_a, art_b = open_artifact(a).verify(), open_artifact(b).verify()
    feeds = _debug_feeds(art_a, inputs, count)
    held = _debug_feeds(art_a, holdout, None) if holdout else None
    return run_debug(art_a, art_b, feeds, out_dir=out_dir, fallback=fallback, target=target,
                     max_layers=max_layers, metric=metric, log=log, holdout=held)


def _debug_feeds(artifact: Any, inputs: list[str], count: int | None) -> list[Any]:
    """The first ``count`` samples (None: all) of image files/folders or .npy/.npz files."""
    import numpy as np

    from paddleopt.compress.ptq import IMAGE_SUFFIXES
    from paddleopt.deploy.inputs import load_inputs

    files: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"folder '{item}' holds no images.",
                                f"put {', '.join(IMAGE_SUFFIXES)} files in it, or pass .npz.")
            files += found
        else:
            files.append(item)
    if not files:
        raise UserError("debug needs inputs to run both models on.",
                        "pass --inputs with image files, a folder of images or an .npz of "
                        "preprocessed tensors (e.g. the evaluation data).")
    if all(Path(f).suffix.lower() not in (".npy", ".npz") for f in files):
        files = files[:count]
    feeds, _ = load_inputs(artifact, files)
    return [np.asarray(f)[:count] for f in feeds]
