"""The server-cpu end of ``paddleopt optimize``: NNCF INT8 of the fp32 ONNX model (OpenVINO's
int8 kernels), then ``paddleopt deploy`` over every form of the model (fp32, PaddleSlim INT8,
both QDQ ONNX files, on Paddle Inference, ONNX Runtime and OpenVINO), judged on the held-out
calibration samples. Its choice is the answer, written as ``deployment.json`` in the work dir;
optimize does not time anything itself.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact

log = logging.getLogger("paddleopt")


def deploy_server_cpu(source: Artifact, calib: str | Path, count: int | None,
                      fp32_onnx: Artifact | None, extra: list[str], work: Path,
                      batch_sizes: list[int] | None, threads: int | None,
                      request: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    """NNCF int8 (when nncf/openvino are installed and the ONNX model exists) + deploy.
    Returns optimize.json's ``nncf``, ``deploy`` and ``deploy_table`` entries."""
    from paddleopt.compress import nncf_ptq
    from paddleopt.deploy.auto import DEPLOYMENT_FILE, DeployRequest, candidates_table, deploy
    from paddleopt.oneshot_calib import calibration_spec

    calibration, _ = calibration_spec(calib, count)
    batches, heldout = nncf_ptq.split_real_inputs(calib, source, calibration["count"])
    nncf: dict[str, Any] = {}
    if fp32_onnx is None:
        nncf["skipped"] = "no fp32 ONNX model (to_onnx could not convert it)"
    elif not nncf_ptq.is_available():
        nncf["skipped"] = 'nncf is not installed (pip install -c constraints.txt ".[openvino]")'
    else:
        say("nncf: OpenVINO post-training INT8 of the ONNX model")
        try:
            art = nncf_ptq.quantize_onnx(fp32_onnx, work / "deploy" / "nncf_int8", batches,
                                         heldout)
            extra = [*extra, str(art.path)]
            nncf = {"artifact": str(art.path), **{k: art.manifest.checks.get(k) for k in (
                "int8_agreement_vs_fp32", "int8_agreement_metric", "openvino_int8_layers")}}
        except UserError as exc:  # e.g. a model OpenVINO cannot compile in int8
            nncf["skipped"] = f"NNCF PTQ failed: {exc.message}"
    if "skipped" in nncf:
        say(f"nncf: {nncf['skipped']}")
    big = max(batch_sizes or [1])
    fields = {"workload": "latency" if big == 1 else "throughput", "batch_size": big,
              **({"threads": [threads]} if threads else {}), **request}
    from paddleopt.config.schema import parse

    req = parse(DeployRequest, fields, path="deploy")
    say(f"deploy: every candidate measured ({req.workload}, batch {req.measured_batch})")
    result = deploy(source, req, work / DEPLOYMENT_FILE, extra, say,
                    inputs=(heldout, f"{calib} (held-out samples after the "
                                     f"{calibration['count']} that calibrate)"))
    check = result["recheck"]
    table = ["## Deployment (paddleopt deploy)", "",
             f"winner: **{result['winner']}**: {result['why']}", "",
             f"re-measured: x{check['ratio']:.3f} of the best leader ({check['best']}), "
             f"tolerance {check['tolerance']:.0%}: "
             f"{'ok' if check['passed'] else 'NOT within tolerance'}", "",
             *candidates_table(result), "",
             f"`paddleopt serve {work / DEPLOYMENT_FILE}` runs it.", ""]
    return {"nncf": nncf, "deploy": result, "deploy_table": table}
