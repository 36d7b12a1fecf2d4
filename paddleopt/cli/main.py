"""The `paddleopt` command: a thin argparse layer over paddleopt.api."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from paddleopt.utils.errors import EXIT_USER_ERROR, UserError


def _add_config(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-c", "--config", required=required, help="pipeline YAML (configs/*.yaml)")
    p.add_argument("-o", "--override", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE",
                   help="override config values, e.g. -o stages.train.epochs=1 "
                        "data.batch_size=64 (several after one -o, as in PaddleClas; stage "
                        "keys may drop 'stages.': -o train.epochs=1)")


def _add_dist(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=int, metavar="N",
                   help="run the training stage(s) in N processes per node through "
                        "paddle.distributed.launch (gloo on CPU, NCCL on GPU)")
    p.add_argument("--ips", metavar="IP,IP,...",
                   help="multi-node: the nodes' addresses; run the same command on each node")


def _add_shape_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="extend", nargs="+", metavar="NAME=SHAPE",
                   help="shape of an input with dynamic dimensions, e.g. x=1x3x48x320 or "
                        "MIN:OPT:MAX (x=1x3x48x96:1x3x48x320:8x3x48x1024); the batch "
                        "dimension follows --batch-size. Needed for models from outside "
                        "paddleopt whose inputs are dynamic beyond the batch")


def _dist_args(args: argparse.Namespace) -> dict[str, Any]:
    from paddleopt.distributed.launch import parse_ips

    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {args.nproc}.", "use e.g. --nproc 2")
    return {"nproc": args.nproc, "ips": parse_ips(args.ips) or None}


def cmd_run(args: argparse.Namespace) -> int:
    from paddleopt import api

    if args.plan_only:  # with what --resume would reuse and why the rest runs
        the_plan = api.plan(args.config, args.override, **_dist_args(args))
        print(the_plan.describe(reuse=api.reuse_status(the_plan)))
        return 0

    def on_plan(the_plan: Any) -> None:
        reuse = api.reuse_status(the_plan) if args.resume else None
        print(the_plan.describe(reuse=reuse), flush=True)

    result = api.run(args.config, args.override, resume=args.resume, until=args.until,
                     on_plan=on_plan, **_dist_args(args))
    _print_done(result)
    return 0


def _print_done(result: Any) -> None:
    for sid, art in result.artifacts.items():
        note = " (resumed)" if sid in result.skipped else ""
        print(f"  {sid:<12} {art.kind:<10} {art.path}{note}")
    if result.report is not None:
        print(f"report: {result.report} (plots: {result.report.with_suffix('.html')}; data: "
              f"{result.report.with_suffix('.json')})")


def _until_command(types: tuple[str, ...], last: bool = False) -> Callable:
    def command(args: argparse.Namespace) -> int:
        from paddleopt import api

        result = api.run_until_type(args.config, args.override, types, resume=not args.fresh,
                                    last=last, **_dist_args(args))
        _print_done(result)
        return 0
    return command


def cmd_bench(args: argparse.Namespace) -> int:
    from paddleopt import api
    from paddleopt.deploy.bench import format_profile

    artifact = _artifact_arg(args)
    if args.matrix:
        return _bench_matrix(args, artifact)
    options = _backend_options(args)
    rows = api.bench(artifact, batch_sizes=args.batch_size, backend=args.backend,
                     options=options, warmup=args.warmup, iters=args.iters,
                     max_seconds=args.max_seconds, eval_samples=args.eval_samples,
                     precision=args.precision, artifacts=args.artifacts,
                     shapes=_shapes(args))
    if rows and rows[0]["artifact"] != str(artifact):
        print(f"{rows[0]['backend']} {rows[0]['precision']}: running {rows[0]['artifact']}")
    for row in rows:
        lat = row["latency_ms"]
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        print(f"{row['backend']:<16} {row['precision']:<5} batch {row['batch_size']:<4} "
              f"p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f}  p99 {lat['p99']:.3f}  "
              f"{row['throughput_per_s']:.1f} samples/s  acc {acc}  "
              f"size {row['size_bytes'] / 1024:.1f} KB  peak RSS {row['peak_rss_mb']:.0f} MB"
              f"  inputs {_shape_text(row)}")
        if row.get("early_exit"):
            ee = row["early_exit"]
            print(f"{'':<16} early exit: exits taken {ee['exit_histogram']} (final last), "
                  f"thresholds {ee['thresholds']}, mean cost {ee['mean_cost_per_sample']} "
                  f"{ee['cost_unit']} per sample ({ee['relative_cost']} of single-exit)")
    out: dict[str, Any] = {"rows": rows}
    if args.profile:
        out["profile"] = api.profile(rows[0]["artifact"], args.profile, backend=rows[0]["backend"],
                                     options=options, batch_size=args.batch_size[0])
        print(format_profile(out["profile"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


def _shapes(args: argparse.Namespace) -> dict[str, Any] | None:
    from paddleopt.artifact.shapes import parse_shape_args

    return parse_shape_args(getattr(args, "shape", None)) or None


def _shape_text(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={'x'.join(map(str, v))}" for k, v in row.get("input_shapes", {}).items())


def _bench_matrix(args: argparse.Namespace, artifact: Any) -> int:
    """`bench --matrix`: every backend x precision reachable from ARTIFACT, one table."""
    from paddleopt import api
    from paddleopt.deploy.bench import format_profile

    if args.no_onednn or args.option:
        raise UserError("--matrix sets the backend options of each row itself.",
                        "drop --no-onednn/--option (use --threads, --backend, --precision to "
                        "narrow the matrix), or bench one deployment without --matrix.")
    result = api.bench_matrix(
        artifact, batch_sizes=args.batch_size, threads=args.threads, warmup=args.warmup,
        iters=args.iters, max_seconds=args.max_seconds,
        eval_samples=1000 if args.eval_samples is None else args.eval_samples,
        artifacts=args.artifacts, profile=args.profile, backend=args.backend,
        precision=args.precision, shapes=_shapes(args),
        progress=lambda d: print(f"  measuring {d.name} ({d.artifact.path.name})", flush=True))
    print("\n".join(api.matrix_table(result["rows"])))
    for item in result["skipped"]:
        print(f"not run: {item['artifact']}: {item['reason']}")
    for name, prof in result["profiles"].items():
        print(f"[{name}] " + (prof["error"] if "error" in prof else format_profile(prof)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from paddleopt import api
    from paddleopt.deploy.check import EXIT_NOT_DEPLOYABLE, TARGETS

    if bool(args.artifact) == bool(args.config):
        raise UserError("give either ARTIFACT or -c CONFIG.",
                        "paddleopt check work_dirs/x/02_export --target arm, or paddleopt "
                        "check -c configs/x.yaml (checks the untrained model: no training).")
    if args.artifact:
        results = [api.check(args.artifact, t) for t in (args.target or TARGETS)]
    else:
        results = api.check_config(args.config, args.override, args.target)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print("\n".join(r.describe() for r in results))
    return 0 if all(r.supported for r in results) else EXIT_NOT_DEPLOYABLE


def _artifact_arg(args: argparse.Namespace) -> Any:
    from paddleopt import api

    if args.artifact:
        return args.artifact
    if not args.config:
        raise UserError("no ARTIFACT given.", "pass an artifact folder, or -c CONFIG to use the "
                        "last inference artifact of that pipeline's work dir.")
    the_plan = api.plan(args.config, args.override)
    return api.latest_artifact(the_plan.work_dir).path


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    from paddleopt.config.loader import apply_overrides

    options = apply_overrides({}, args.option or [])  # --option a.b=v: the -o syntax
    if args.threads is not None:
        options["threads"] = args.threads
    if getattr(args, "no_onednn", False):
        options["onednn"] = False
    return options


def cmd_debug(args: argparse.Namespace) -> int:
    from paddleopt import api

    fallback = {"auto": None, "on": True, "off": False}[args.fallback]
    report = api.debug(args.a, args.b, args.inputs, out_dir=args.out, count=args.count,
                       fallback=fallback, target=args.target, max_layers=args.max_layers,
                       metric=args.metric, log=print, holdout=args.holdout)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.describe())
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from paddleopt import api

    artifact = _artifact_arg(args)
    results = api.infer(artifact, args.inputs, backend=args.backend,
                        options=_backend_options(args), top_k=args.top_k,
                        preprocess=_preprocess_overrides(args), char_dict=args.dict)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        from paddleopt.deploy.ocr_outputs import describe

        for r in results:
            print(f"{r['input']}: {describe(r)}")
    return 0


def _preprocess_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """infer's --invert/--size/--mean/--std as manifest preprocess entries."""
    out: dict[str, Any] = {}
    if args.invert is not None:
        out["invert"] = args.invert == "on"
    if args.size:
        try:
            h, w = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise UserError(f"--size {args.size!r} is not HEIGHTxWIDTH.",
                            "pass e.g. --size 28x28.") from None
        out["size"] = [h, w]
    for name in ("mean", "std"):
        if getattr(args, name):
            out[name] = getattr(args, name)
    return out


def cmd_serve(args: argparse.Namespace) -> int:
    from paddleopt import api

    artifact = args.artifact
    if artifact is None and args.config:
        artifact = _artifact_arg(args)
    if artifact is None and not args.watch:
        raise UserError("no ARTIFACT given.", "pass an artifact folder, -c CONFIG (its last "
                        "inference artifact) or --watch FOLDER.")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: other machines can reach this server (and "
              f"its /reload endpoint unless --no-reload-api).", file=sys.stderr)

    def ready(url: str, service: Any) -> None:
        current = service.manager.current
        print(f"serving {current.path} ({current.name}) on {url}  "
              f"[max batch {args.max_batch_size}, wait {args.max_wait_ms} ms, "
              f"{args.workers} {args.executor} workers]", flush=True)

    api.serve(artifact, ready=ready, host=args.host, port=args.port, backend=args.backend,
              options=_backend_options(args), workers=args.workers, executor=args.executor,
              max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
              max_queue=args.max_queue, max_body_bytes=int(args.max_body_mb * (1 << 20)),
              max_request_rows=args.max_request_rows, cache_models=args.cache_models,
              watch=args.watch, watch_interval_s=args.watch_interval,
              allow_reload=not args.no_reload_api, request_timeout_s=args.timeout,
              body_timeout_s=args.body_timeout,
              isolate_reloads=not args.no_isolate_reloads, model_name=args.model_name,
              http=args.http, loop=args.loop, shapes=_shapes(args),
              log_level="info" if args.verbose else "warning")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from paddleopt import api

    request = {k: v for k, v in {
        "target": args.target, "workload": args.workload, "batch_size": args.batch_size,
        "min_agreement": args.min_agreement, "max_accuracy_drop": args.max_accuracy_drop,
        "threads": args.threads, "eval_samples": args.eval_samples, "rounds": args.rounds,
        "seconds": args.seconds}.items() if v is not None}
    result = api.deploy(_artifact_arg(args), out=args.out, artifacts=args.artifacts,
                        progress=lambda msg: print(msg, flush=True), **request)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from paddleopt.deploy.auto import candidates_table

    print("\n".join(candidates_table(result)))
    print(f"\nwinner: {result['winner']}: {result['why']}")
    check = result["recheck"]
    print(f"re-measured: winner {check['winner_p50_ms']:.3f} ms vs best {check['best']} "
          f"{check['best_p50_ms']:.3f} ms (x{check['ratio']:.3f}, tolerance "
          f"{check['tolerance']:.0%}): {'ok' if check['passed'] else 'NOT within tolerance'}")
    if not check["passed"]:
        print("the two timings disagree: the machine's load changed between them; re-run with "
              "more --rounds / --seconds (or when it is quieter) before trusting the pick.")
    from paddleopt.deploy.auto import DEPLOYMENT_FILE

    used = Path(result["file"]).name == DEPLOYMENT_FILE
    print(f"wrote {result['file']}" + (" (paddleopt infer/serve use it for this model)" if used
                                       else " (pass it to paddleopt infer/serve as ARTIFACT)"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from paddleopt import api

    print(api.report(args.work_dir))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from paddleopt import api
    from paddleopt.utils.doctor import format_report

    info = api.doctor()
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return 0


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    from paddleopt.deploy.backends.table import BACKEND_NAMES

    p.add_argument("--backend", choices=BACKEND_NAMES,
                   help="default: the natural backend for the artifact kind")
    p.add_argument("--threads", type=int, help="CPU threads for the backend")
    p.add_argument("--no-onednn", action="store_true", help="Paddle Inference without oneDNN")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="any backend option, e.g. --option ir_optim=false")


class _HelpWithDefaults(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help when it has a real default the text does
    not already mention."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == []
                or default == argparse.SUPPRESS or not action.option_strings):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's parser shows option defaults (subparsers inherit the class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpWithDefaults)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"paddleopt {version('paddleopt')}"
    except PackageNotFoundError:
        return "paddleopt (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="paddleopt", description=(
        "Train, compress, export and deploy PaddlePaddle models from one config-driven pipeline."))
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging and the third-party output (Paddle, PaddleSlim, "
                             "glog) that is muted by default")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="plan and run a whole pipeline, then write the report")
    _add_config(p)
    p.add_argument("--resume", action="store_true",
                   help="skip stages whose folder matches the planned fingerprint")
    p.add_argument("--until", metavar="STAGE_ID", help="stop after this stage (no report)")
    p.add_argument("--plan-only", action="store_true", help="validate and print the plan")
    _add_dist(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="validate a config and print the plan (no work): each "
                       "stage says whether `run --resume` reuses its finished folder or why "
                       "it runs")
    _add_config(p)
    p.set_defaults(func=cmd_run, plan_only=True, resume=False, until=None, nproc=None, ips=None)

    from paddleopt.stages.catalog import stage_types

    for name, types, last, text in (
            ("train", stage_types("train"), False, "run the pipeline up to its first train stage"),
            ("compress", stage_types("compress", "quantize"), True,
             "run the pipeline up to its last compression stage"),
            ("export", stage_types("export"), False, "run the pipeline up to its export stage")):
        p = sub.add_parser(name, help=text + " (finished stages are reused)")
        _add_config(p)
        p.add_argument("--fresh", action="store_true", help="do not reuse finished stages")
        if name != "export":
            _add_dist(p)
        else:
            p.set_defaults(nproc=None, ips=None)
        p.set_defaults(func=_until_command(types, last))

    p = sub.add_parser("bench", help="latency/throughput/accuracy of an artifact")
    p.add_argument("artifact", nargs="?", help="artifact folder (or use -c)")
    _add_config(p, required=False)
    p.add_argument("--batch-size", type=int, nargs="+", default=[1],
                   help="batch sizes to time, each in its own row")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs before timing")
    p.add_argument("--iters", type=int, default=200,
                   help="timed runs per batch size (fewer when --max-seconds is reached)")
    p.add_argument("--max-seconds", type=float, default=5.0,
                   help="time budget per batch size")
    p.add_argument("--eval-samples", type=int, default=None,
                   help="score accuracy on the first N eval samples (default: all)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"],
                   help="run the artifact of this precision: ARTIFACT or one of the same "
                        "model next to it (e.g. the PTQ model for int8)")
    p.add_argument("--matrix", action="store_true",
                   help="every backend x precision reachable from ARTIFACT (its work dir's "
                        "inference fp32/int8, onnx, lite x86 artifacts), side by side; "
                        "--backend/--precision narrow it")
    p.add_argument("--artifacts", nargs="+", metavar="PATH",
                   help="more artifacts to consider (besides ARTIFACT's work dir)")
    p.add_argument("--profile", metavar="TRACE.json",
                   help="also write a profiler trace (chrome://tracing, Perfetto) at the "
                        "first batch size and print the top ops by time (--matrix: one "
                        "TRACE.<variant>.json per row)")
    _add_shape_arg(p)
    _add_backend_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("check", help="list the ops a deployment target cannot run, before "
                                     "converting (exit 3 when one cannot)")
    p.add_argument("artifact", nargs="?", help="inference artifact folder (or use -c)")
    _add_config(p, required=False)
    p.add_argument("--target", nargs="+", metavar="TARGET",
                   help="onnx, arm, x86, opencl (default: all; with -c: the config's "
                        "conversion targets)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("debug", help="where artifact B (INT8, ONNX) starts to disagree with A "
                                     "(fp32), layer by layer; for INT8, the ops to keep fp32 "
                                     "as a verified ptq skip list")
    p.add_argument("a", metavar="A", help="reference artifact (fp32 Paddle inference)")
    p.add_argument("b", metavar="B", help="the artifact to check (its INT8 or ONNX version)")
    p.add_argument("--inputs", nargs="+", required=True, metavar="PATH",
                   help="real inputs: image files or folders (preprocessed as A records) or "
                        ".npy/.npz tensors already preprocessed")
    p.add_argument("--count", type=int, default=32, help="samples used (default: 32)")
    p.add_argument("--holdout", nargs="+", metavar="PATH",
                   help="inputs the fp32 fallback is verified on, never searched on (every "
                        "sample; default: the second half of --inputs)")
    p.add_argument("--out", metavar="DIR", help="write debug.png and debug.json here")
    p.add_argument("--fallback", choices=("auto", "on", "off"), default="auto",
                   help="search the ops to keep fp32 and verify them by re-quantizing A "
                        "(auto: when B is the INT8 model of an fp32 A)")
    p.add_argument("--target", type=float, default=0.8,
                   help="share of the lost agreement the skip list must win back (0.8)")
    p.add_argument("--max-layers", type=int, default=4,
                   help="at most this many convolutions kept fp32 (default: 4)")
    p.add_argument("--metric", metavar="MODULE:FUNCTION",
                   help="the fallback's agreement score, function(outputs, reference) -> "
                        "float, e.g. paddleopt.metrics.ocr:ctc_agreement (default: top-1 "
                        "agreement)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_debug)

    p = sub.add_parser("infer", help="predict raw inputs with an artifact")
    p.add_argument("artifact", nargs="?", help="artifact folder (or use -c)")
    p.add_argument("inputs", nargs="*",
                   help="image files (preprocessed as the artifact's manifest records), or "
                        ".npy/.npz tensors that are ALREADY preprocessed (normalized, the "
                        "model's size and layout: they are fed as they are)")
    _add_config(p, required=False)
    p.add_argument("--top-k", type=int, default=1,
                   help="print the K most likely classes with their softmax scores")
    p.add_argument("--dict", metavar="KEYS.txt",
                   help="a text recogniser's characters (PaddleOCR's keys file, one per "
                        "line): prints the decoded text (default: the folder's inference.yml "
                        "PostProcess.character_dict)")
    p.add_argument("--invert", nargs="?", const="on", choices=("on", "off"),
                   help="flip light and dark before the model sees the image (e.g. a "
                        "black-on-white drawing for a model trained on white-on-black MNIST); "
                        "'off' cancels an invert the manifest records")
    p.add_argument("--size", metavar="HxW", help="resize images to this instead of the "
                   "manifest's size, e.g. 28x28")
    p.add_argument("--mean", type=float, nargs="+", metavar="M",
                   help="normalization mean per channel (images scaled to [0, 1] first)")
    p.add_argument("--std", type=float, nargs="+", metavar="S",
                   help="normalization std per channel")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_backend_args(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("serve", help="serve an artifact over HTTP (/predict /health /metrics "
                                     "/reload) with dynamic batching and hot reload")
    p.add_argument("artifact", nargs="?", help="artifact folder (or -c, or --watch)")
    _add_config(p, required=False)
    _add_shape_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument("--workers", type=int, default=2,
                   help="threads (or processes, see --executor) running batches, one "
                        "predictor each")
    p.add_argument("--executor", choices=("thread", "process"), default="thread",
                   help="run the predictors in the server process (thread) or one child "
                        "process per worker (process: Paddle Inference holds the GIL while "
                        "it runs, so only processes run in parallel with each other and HTTP)")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="rows per model run (1: no dynamic batching)")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="how long a request waits for batch-mates")
    p.add_argument("--max-queue", type=int, default=1024, help="queued requests before 503")
    p.add_argument("--max-body-mb", type=float, default=8.0, help="request body limit (413)")
    p.add_argument("--max-request-rows", type=int, default=64,
                   help="samples per request (413 beyond)")
    p.add_argument("--cache-models", type=int, default=1,
                   help="loaded artifacts kept across reloads")
    p.add_argument("--watch", metavar="DIR",
                   help="serve DIR/current (symlink or CURRENT file) and reload when it changes")
    p.add_argument("--watch-interval", type=float, default=1.0, help="seconds between checks")
    p.add_argument("--no-reload-api", action="store_true", help="refuse POST /reload")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before 504")
    p.add_argument("--body-timeout", type=float, default=10.0,
                   help="seconds to receive a request body before 408")
    p.add_argument("--http", choices=("auto", "httptools", "h11"), default="auto",
                   help="HTTP parser (auto: httptools when installed)")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop (auto: uvloop when installed)")
    p.add_argument("--model-name", default=None,
                   help="the model's name in the v2 protocol (/v2/models/NAME; default: the "
                   "artifact folder's name)")
    p.add_argument("--no-isolate-reloads", action="store_true",
                   help="load reloaded models in the server process directly (faster reloads;"
                   " a model file that crashes Paddle then takes the server down)")
    _add_backend_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("deploy", help="measure every deployment of ARTIFACT on a target, "
                                      "write deployment.json with the fastest one within "
                                      "the accuracy budget (infer/serve use it)")
    p.add_argument("artifact", nargs="?", help="artifact folder (or use -c)")
    _add_config(p, required=False)
    p.add_argument("--target", choices=["server-cpu"], help="where it runs (default server-cpu)")
    p.add_argument("--workload", choices=["latency", "throughput"],
                   help="latency: batch 1 p50 (default); throughput: samples/s at --batch-size")
    p.add_argument("--batch-size", type=int, help="throughput batch (default 32)")
    p.add_argument("--min-agreement", type=float,
                   help="share of fp32 top-1 decisions (or mask IoU) to keep (default 0.99)")
    p.add_argument("--max-accuracy-drop", type=float,
                   help="with labelled eval data: allowed accuracy drop (default 0.01)")
    p.add_argument("--threads", type=int, nargs="+", help="thread counts to try "
                   "(default: 1 and all cores)")
    p.add_argument("--eval-samples", type=int, help="inputs for the accuracy check (256)")
    p.add_argument("--rounds", type=int, help="alternating timing rounds (3)")
    p.add_argument("--seconds", type=float, help="timing per candidate per round (1.5)")
    p.add_argument("--artifacts", nargs="+", metavar="PATH",
                   help="more artifacts of the same model to consider")
    p.add_argument("--out", help="deployment file (default: ARTIFACT/../deployment.json)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_deploy)

    from paddleopt.cli.oneshot import add_parsers

    add_parsers(sub)  # convert / quantize / optimize: a model you have, no YAML

    p = sub.add_parser("report", help="re-render report.md of a work dir")
    p.add_argument("work_dir")
    p.set_defaults(func=cmd_report)

    _add_k8s(sub)

    p = sub.add_parser("doctor", help="versions, extras, CPU ISA flags, GPU presence")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
    return parser


def _add_k8s(sub: Any) -> None:
    k8s = sub.add_parser("k8s", help="Kubernetes manifests: serving (Deployment, Service, "
                         "HPA) or fleet training (Kubeflow PaddleJob)")
    kinds = k8s.add_subparsers(dest="k8s_kind", required=True)
    p = kinds.add_parser("serve", help="Deployment + Service + HorizontalPodAutoscaler")
    p.add_argument("--name", required=True, help="Kubernetes name, also the v2 model name")
    p.add_argument("--image", required=True, help="the image built from docker/Dockerfile")
    p.add_argument("--model", default="/models/model",
                   help="artifact folder inside the container (default /models/model)")
    p.add_argument("--pvc", help="PersistentVolumeClaim with the models, mounted at /models")
    for flag, default in (("--port", 8000), ("--replicas", 2), ("--min-replicas", 2),
                          ("--max-replicas", 8), ("--target-cpu", 70), ("--workers", 2),
                          ("--max-batch-size", 32), ("--gpu", 0)):
        p.add_argument(flag, type=int, default=default)
    p.add_argument("--cpu", default="2")
    p.add_argument("--memory", default="2Gi")
    p.add_argument("--out", "-O", help="write the YAML here instead of stdout")
    p.set_defaults(func=cmd_k8s)
    p = kinds.add_parser("train", help="Kubeflow training-operator PaddleJob (fleet training)")
    p.add_argument("--name", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("-c", "--config", required=True, help="pipeline config inside the image")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--nproc", type=int, default=1, help="processes per node")
    p.add_argument("--cpu", default="4")
    p.add_argument("--memory", default="8Gi")
    p.add_argument("--gpu", type=int, default=0)
    p.add_argument("--pvc", help="PersistentVolumeClaim for work_dirs, mounted at /work")
    p.add_argument("--out", "-O", help="write the YAML here instead of stdout")
    p.set_defaults(func=cmd_k8s)


def cmd_k8s(args: argparse.Namespace) -> int:
    from paddleopt.serve import k8s

    if args.k8s_kind == "serve":
        docs = k8s.serving_manifests(k8s.ServingSpec(
            name=args.name, image=args.image, model=args.model, port=args.port,
            replicas=args.replicas, cpu=args.cpu, memory=args.memory,
            min_replicas=args.min_replicas, max_replicas=args.max_replicas,
            target_cpu_percent=args.target_cpu, workers=args.workers,
            max_batch_size=args.max_batch_size, pvc=args.pvc, gpu=args.gpu))
    else:
        docs = [k8s.paddle_job(k8s.TrainingSpec(
            name=args.name, image=args.image, config=args.config, nodes=args.nodes,
            nproc=args.nproc, cpu=args.cpu, memory=args.memory, gpu=args.gpu, pvc=args.pvc))]
    text = k8s.to_yaml(docs)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {len(docs)} manifest(s) to {args.out}; apply: kubectl apply -f {args.out}")
    else:
        print(text, end="")
    return 0


def quiet_third_parties() -> None:
    """Default (no -v): glog INFO lines ("New Executor is Running") and setuptools' "replacing
    distutils" warning are not for users. Set before paddle is imported (commands import it
    lazily); a GLOG_minloglevel the user exported wins."""
    import os
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "1")
    warnings.filterwarnings("ignore", message="Setuptools is replacing distutils")
    # paddle.nn.BatchNorm in training mode, once per run: a note for Paddle developers
    warnings.filterwarnings("ignore", message="When training, we now always track global")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from paddleopt.utils.logging import setup_logging

    setup_logging(args.verbose)
    if not args.verbose:
        quiet_third_parties()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"fix: {exc.fix}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:
        from paddleopt.distributed.launch import WorkerNodeFinished

        if isinstance(exc, WorkerNodeFinished):  # multi-node: this node's ranks are done
            print(str(exc), file=sys.stderr)
            return 0
        raise


if __name__ == "__main__":
    sys.exit(main())
