"""The `paddleopt` command: a thin argparse layer over paddleopt.api."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from paddleopt.utils.errors import EXIT_USER_ERROR, UserError


def _add_config(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-c", "--config", required=required, help="pipeline YAML (configs/*.yaml)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. -o stages.train.epochs=1 "
                        "(stage keys may drop 'stages.': -o train.epochs=1)")


def cmd_run(args: argparse.Namespace) -> int:
    from paddleopt import api

    if args.plan_only:
        print(api.plan(args.config, args.override).describe())
        return 0
    the_plan = api.plan(args.config, args.override)
    print(the_plan.describe(), flush=True)
    from paddleopt.stages.pipeline import run

    result = run(the_plan, resume=args.resume, until=args.until)
    _print_done(result)
    return 0


def _print_done(result: Any) -> None:
    for sid, art in result.artifacts.items():
        note = " (resumed)" if sid in result.skipped else ""
        print(f"  {sid:<12} {art.kind:<10} {art.path}{note}")
    if result.report is not None:
        print(f"report: {result.report} (and {result.report.with_suffix('.json')})")


def _until_command(types: tuple[str, ...], last: bool = False) -> Callable:
    def command(args: argparse.Namespace) -> int:
        from paddleopt import api

        result = api.run_until_type(args.config, args.override, types, resume=not args.fresh,
                                    last=last)
        _print_done(result)
        return 0
    return command


def cmd_bench(args: argparse.Namespace) -> int:
    from paddleopt import api

    artifact = _artifact_arg(args)
    options = _backend_options(args)
    rows = api.bench(artifact, batch_sizes=args.batch_size, backend=args.backend,
                     options=options, warmup=args.warmup, iters=args.iters,
                     max_seconds=args.max_seconds, eval_samples=args.eval_samples)
    for row in rows:
        lat = row["latency_ms"]
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        print(f"{row['backend']:<16} {row['precision']:<5} batch {row['batch_size']:<4} "
              f"p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f}  p99 {lat['p99']:.3f}  "
              f"{row['throughput_per_s']:.1f} samples/s  acc {acc}  "
              f"size {row['size_bytes'] / 1024:.1f} KB  peak RSS {row['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows}, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


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
    options: dict[str, Any] = {}
    for text in args.option or []:
        from paddleopt.config.loader import parse_override

        keys, value = parse_override(text)
        node = options
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    if args.threads is not None:
        options["threads"] = args.threads
    if getattr(args, "no_onednn", False):
        options["onednn"] = False
    return options


def cmd_infer(args: argparse.Namespace) -> int:
    from paddleopt import api

    artifact = _artifact_arg(args)
    results = api.infer(artifact, args.inputs, backend=args.backend,
                        options=_backend_options(args), top_k=args.top_k)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            preds = ", ".join(f"{p['label']} ({p['score']:.3f})" for p in r["predictions"])
            print(f"{r['input']}: {preds}")
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
    p.add_argument("--backend", choices=["eager", "paddle_inference", "onnxruntime", "lite"],
                   help="default: the natural backend for the artifact kind")
    p.add_argument("--threads", type=int, help="CPU threads for the backend")
    p.add_argument("--no-onednn", action="store_true", help="Paddle Inference without oneDNN")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="any backend option, e.g. --option ir_optim=false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paddleopt", description=(
        "Train, compress, export and deploy PaddlePaddle models from one config-driven pipeline."))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="plan and run a whole pipeline, then write the report")
    _add_config(p)
    p.add_argument("--resume", action="store_true",
                   help="skip stages whose folder matches the planned fingerprint")
    p.add_argument("--until", metavar="STAGE_ID", help="stop after this stage (no report)")
    p.add_argument("--plan-only", action="store_true", help="validate and print the plan")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="validate a config and print the plan (no work)")
    _add_config(p)
    p.set_defaults(func=cmd_run, plan_only=True, resume=False, until=None)

    for name, types, last, text in (
            ("train", ("train",), False, "run the pipeline up to its first train stage"),
            ("compress", ("prune", "sparsify", "distill", "qat", "ptq"), True,
             "run the pipeline up to its last compression stage"),
            ("export", ("export",), False, "run the pipeline up to its export stage")):
        p = sub.add_parser(name, help=text + " (finished stages are reused)")
        _add_config(p)
        p.add_argument("--fresh", action="store_true", help="do not reuse finished stages")
        p.set_defaults(func=_until_command(types, last))

    p = sub.add_parser("bench", help="latency/throughput/accuracy of an artifact")
    p.add_argument("artifact", nargs="?", help="artifact folder (or use -c)")
    _add_config(p, required=False)
    p.add_argument("--batch-size", type=int, nargs="+", default=[1])
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=5.0)
    p.add_argument("--eval-samples", type=int, default=None,
                   help="score accuracy on the first N eval samples (default: all)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    _add_backend_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("infer", help="predict raw inputs with an artifact")
    p.add_argument("artifact", nargs="?", help="artifact folder (or use -c)")
    p.add_argument("inputs", nargs="*", help="image files, .npy or .npz")
    _add_config(p, required=False)
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_backend_args(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("report", help="re-render report.md of a work dir")
    p.add_argument("work_dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("doctor", help="versions, extras, CPU ISA flags, GPU presence")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from paddleopt.utils.logging import setup_logging

    setup_logging(args.verbose)
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


if __name__ == "__main__":
    sys.exit(main())
