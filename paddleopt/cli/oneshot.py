"""`paddleopt convert | quantize | optimize DIR ...`: a model you have, no YAML (see
paddleopt.oneshot)."""
from __future__ import annotations

import argparse
import json
from typing import Any



def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", help="Paddle inference folder (model.pdmodel or "
                                     "inference.pdmodel + .pdiparams)")
    p.add_argument("--work-dir", help="where the results go (default work_dirs/<name>_<cmd>)")
    p.add_argument("--shape", action="extend", nargs="+", metavar="NAME=SHAPE",
                   help="shape of an input with dynamic dimensions, e.g. x=1x3x48x320 or "
                        "MIN:OPT:MAX")
    p.add_argument("-o", "--override", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE",
                   help="override the generated pipeline, e.g. -o ptq.algo=mse "
                        "to_onnx.opset_version=13")
    p.add_argument("--json", help="also write the result to this JSON file")


def _quant_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib", required=True, metavar="IMAGES_OR_NPZ",
                   help="image folder (preprocessed as the model folder's preprocessing file "
                        "says) or .npz with one array per input; the samples after "
                        "--calib-count check INT8 against fp32")
    p.add_argument("--calib-count", type=int, help="samples used to calibrate (default: "
                                                   "half, at most 256)")
    p.add_argument("--max-drop", type=float, default=0.01,
                   help="allowed drop of the fp32 agreement (default 0.01: INT8 must keep "
                        ">= 99%% top-1 agreement per output position)")
    p.add_argument("--metric", metavar="MODULE:FUNCTION",
                   help="judge INT8 by function(outputs, fp32_outputs) -> score in [0, 1], "
                        "e.g. paddleopt.metrics.ocr:ctc_agreement (exact CTC strings)")
    p.add_argument("--thorough", action="store_true",
                   help="also try keeping the most quantization-sensitive layers fp32 "
                        "(one PTQ run per convolution to rank them: slow on big models)")
    p.add_argument("--distill", type=int, default=0, metavar="STEPS",
                   help="also try quant-aware training distilled from the fp32 model for "
                        "STEPS batches (PaddleSlim ACT; no labels, no training code)")


def _shapes(args: argparse.Namespace) -> dict[str, Any] | None:
    from paddleopt.artifact.shapes import parse_shape_args

    return parse_shape_args(args.shape) or None


def _write(args: argparse.Namespace, data: Any) -> None:
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
        print(f"wrote {args.json}")


def cmd_convert(args: argparse.Namespace) -> int:
    from paddleopt import oneshot

    result = oneshot.convert(args.model_dir, args.to, args.work_dir, _shapes(args),
                             args.override, resume=args.resume, inputs=args.inputs)
    out = {}
    for sid, art in result.artifacts.items():
        checks = art.manifest.checks
        parity = {k: v for k, v in checks.items() if "max_abs_diff" in k or k == "parity"}
        print(f"  {sid:<10} {art.kind:<6} {art.path}  {json.dumps(parity, default=str)}")
        out[sid] = {"path": str(art.path), "checks": checks}
    _write(args, out)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from paddleopt import oneshot

    result = oneshot.quantize(args.model_dir, args.calib, args.work_dir, args.max_drop,
                              _shapes(args), args.metric, args.calib_count, args.thorough,
                              args.override, distill=args.distill)
    print(result.describe())
    _write(args, result.to_dict())
    return 0 if result.kept == "int8" else oneshot.EXIT_KEPT_FP32


def cmd_optimize(args: argparse.Namespace) -> int:
    from paddleopt import api, oneshot

    summary = oneshot.optimize(
        args.model_dir, args.calib, args.target, args.work_dir, args.max_drop, _shapes(args),
        args.metric, args.calib_count, args.thorough, args.batch_size, args.threads,
        args.iters, args.override, progress=lambda text: print(text, flush=True),
        distill=args.distill, deploy={k: v for k, v in {
            "rounds": args.rounds, "seconds": args.seconds,
            "min_agreement": args.min_agreement}.items() if v is not None})
    if "deploy" in summary:  # server-cpu: deploy's choice is the answer
        print("\n".join(summary["deploy_table"]))
    else:
        print("\n".join(api.matrix_table(summary["bench"]["rows"])))
    print(f"report: {summary['work_dir']}/optimize.md (and optimize.json)")
    _write(args, summary)
    return 0


def add_parsers(sub: Any) -> None:
    from paddleopt.oneshot import CONVERSIONS, OPTIMIZE_TARGETS

    p = sub.add_parser("convert", help="convert an inference folder to ONNX / Paddle Lite "
                                       "(each checked against Paddle Inference)")
    _common(p)
    p.add_argument("--to", nargs="+", required=True, choices=list(CONVERSIONS))
    p.add_argument("--resume", action="store_true", help="reuse finished conversions")
    p.add_argument("--inputs", metavar="NPZ", help="real inputs (one array per model input) "
                                                   "for the parity checks (default: random)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("quantize", help="accuracy-aware INT8 of an inference folder, judged "
                                        "against its fp32 outputs (exit 3: fp32 kept)")
    _common(p)
    _quant_args(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("optimize", help="check -> quantize -> convert -> (server-cpu) NNCF "
                                        "int8 + deploy's choice, (arm) bench --matrix -> "
                                        "report, for one deployment target")
    _common(p)
    _quant_args(p)
    p.add_argument("--target", choices=list(OPTIMIZE_TARGETS), default="server-cpu")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1])
    p.add_argument("--threads", type=int)
    p.add_argument("--iters", type=int, default=50, help="arm: bench iterations")
    p.add_argument("--rounds", type=int, help="server-cpu: deploy's alternating timing "
                                              "rounds (3)")
    p.add_argument("--seconds", type=float, help="server-cpu: deploy's timing per candidate "
                                                 "per round (1.5)")
    p.add_argument("--min-agreement", type=float, help="server-cpu: deploy's budget, share of "
                                                       "fp32 decisions kept (0.99)")
    p.set_defaults(func=cmd_optimize)

