"""NNCF post-training quantization of an fp32 ONNX artifact into an INT8 quantize/dequantize
(QDQ) ONNX artifact, for OpenVINO (and ONNX Runtime).

Why NNCF next to PaddleSlim's PTQ: OpenVINO's CPU plugin folds QDQ pairs into its own int8
kernels (AMX/VNNI on this CPU), and NNCF places the pairs where those kernels want them
(e.g. not on the residual adds OpenVINO keeps in fp32). Measured on ResNet50@224, 1 thread,
batch 8: OpenVINO on the NNCF QDQ file 114 ms, on PaddleSlim's QDQ file 141 ms, OpenVINO's
default (bf16) 258 ms. The ONNX form keeps the artifact kinds as they are: an ``onnx``
artifact of precision ``int8`` that every ONNX backend runs and ``deploy`` finds as a sibling.

nncf 3.4.0 (the ``openvino`` extra; no torch) quantizes ONNX with ONNX Runtime collecting
the activation statistics. Calibration must be real inputs of the model (images the way the
model's preprocess makes them, rendered text lines for a recogniser, ...): the ranges it
measures are the int8 ranges. The result records its fp32 agreement on held-out real inputs
(``checks.int8_agreement_vs_fp32``, OpenVINO fp32 vs OpenVINO int8) and how many layers
OpenVINO runs in int8 (``checks.openvino_int8_layers``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact

ONNX_FILE = "model.onnx"
INT8_LAYERS = ("Convolution", "FullyConnected", "MatMul", "GroupConvolution", "Deconvolution")


def is_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


def quantize_onnx(src: Artifact, out_dir: str | Path,
                  calibration: Iterable[Sequence[np.ndarray]],
                  heldout: Sequence[np.ndarray] | None = None, *,
                  fast_bias_correction: bool = True,
                  ignored_types: Sequence[str] = ()) -> Artifact:
    """Quantize ``src`` (an fp32 ONNX artifact) with NNCF; write the QDQ ONNX artifact.

    Args:
        calibration: batches of real inputs (one array per model input, in manifest order).
        heldout: real inputs NOT used for calibration; OpenVINO fp32 and int8 run them and
            their agreement (top-1 / mask IoU, ``paddleopt.metrics.agreement``) is recorded.
        ignored_types: ONNX op types NNCF leaves in fp32 (e.g. ["MatMul"]).

    NNCF's "performance" preset (symmetric activations) is used: with the "mixed" preset
    (asymmetric activations) OpenVINO 2026.4 cannot compile the QDQ ONNX of the PP-OCRv4
    models ("No suitable implementations" in the CPU plugin).
    """
    from paddleopt.artifact import Artifact

    if src.kind != "onnx" or src.manifest.precision != "fp32":
        raise UserError(f"NNCF PTQ quantizes an fp32 ONNX artifact; '{src.path}' is "
                        f"{src.manifest.precision} {src.kind}.",
                        "convert the fp32 Paddle model with to_onnx first.")
    if not is_available():
        raise UserError("nncf is not installed.",
                        'pip install -c constraints.txt -e ".[openvino]"')
    import nncf
    import onnx

    model = onnx.load(str(src.file("model")))
    names = [i.name for i in model.graph.input
             if i.name not in {t.name for t in model.graph.initializer}]
    items = [dict(zip(names, (np.ascontiguousarray(a) for a in batch), strict=True))
             for batch in calibration]
    if not items:
        raise UserError("NNCF PTQ got no calibration batches.",
                        "give real inputs of the model (an image folder or an .npz).")
    samples = sum(len(next(iter(b.values()))) for b in items)
    kwargs: dict[str, Any] = {}
    if ignored_types:
        kwargs["ignored_scope"] = nncf.IgnoredScope(types=list(ignored_types))
    quantized = nncf.quantize(
        model, nncf.Dataset(items), subset_size=len(items),  # items are batches
        preset=nncf.QuantizationPreset.PERFORMANCE, fast_bias_correction=fast_bias_correction,
        **kwargs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(quantized, str(out / ONNX_FILE))
    nodes = [n.op_type for n in quantized.graph.node]
    manifest = src.manifest.derive(files={"model": ONNX_FILE}, precision="int8")
    manifest.quantization = {
        "method": "ptq", "engine": "nncf", "nncf_version": nncf.__version__,
        "preset": "performance",
        "fast_bias_correction": fast_bias_correction, "samples": samples,
        "ignored_types": list(ignored_types), "format": "onnx_qdq",
        "quantize_linear_nodes": nodes.count("QuantizeLinear"),
        "dequantize_linear_nodes": nodes.count("DequantizeLinear"),
        "source_digest": src.digest()}
    manifest.save(out)
    result = Artifact.open(out)
    manifest.checks.update(int8_checks(src, result, heldout))
    manifest.save(out)
    return Artifact.open(out)


def int8_checks(fp32: Artifact, int8: Artifact, heldout: Sequence[np.ndarray] | None
                ) -> dict[str, Any]:
    """OpenVINO's int8 layer count for ``int8`` and, given held-out real inputs, its
    agreement with ``fp32`` (both on OpenVINO, exact fp32 for the non-quantized ops)."""
    from paddleopt.deploy.backends.openvino import runtime_precisions
    from paddleopt.deploy.predictor import load_predictor

    options = {"threads": 1, "precision": "fp32"}
    quantized = load_predictor(int8, "openvino", options)
    precisions = runtime_precisions(quantized)
    checks: dict[str, Any] = {
        "openvino_int8_layers": sorted(t for t in INT8_LAYERS
                                       if precisions.get(t, set()) & {"i8", "u8"})}
    if heldout is not None and len(heldout) and len(heldout[0]):
        from paddleopt.metrics.agreement import agreement

        reference = load_predictor(fp32, "openvino", options)
        ref, out = run_batched(reference, heldout), run_batched(quantized, heldout)
        found = agreement(out, ref)
        checks.update({"int8_agreement_vs_fp32": found["score"],
                       "int8_agreement_metric": found["metric"],
                       "int8_agreement_samples": len(heldout[0])})
    return checks


def run_batched(predictor: Any, feeds: Sequence[np.ndarray], batch: int = 8
                ) -> list[np.ndarray]:
    """``predictor`` over ``feeds`` in batches, outputs concatenated."""
    n = len(feeds[0])
    parts = [predictor.run([f[i:i + batch] for f in feeds]) for i in range(0, n, batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def split_real_inputs(calib: str | Path, src: Artifact, count: int
                      ) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
    """(calibration batches of the first ``count`` samples, the remaining samples held out)
    from an .npz (one array per model input, named like it) or an image folder (the
    model's recorded image preprocess), the same split ``paddleopt quantize`` makes."""
    names = [s.name for s in src.manifest.io.inputs]
    path = Path(calib)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise UserError(f"'{path}' lacks inputs {missing} (has {data.files}).",
                                "save one array per model input, named like the input.")
            feeds = [np.asarray(data[n]) for n in names]
    elif path.is_dir():
        from paddleopt.compress.ptq import IMAGE_SUFFIXES
        from paddleopt.config.schema import parse
        from paddleopt.data.preprocess import ImagePreprocess, load_images, normalize

        pre = src.manifest.preprocess
        if not pre or pre.get("type", "image") != "image" or len(names) != 1:
            raise UserError(f"images in '{path}' cannot become the model's inputs: it records "
                            "no image preprocess.", "pass an .npz of ready input tensors.")
        spec = parse(ImagePreprocess, pre, path="preprocess")
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        feeds = [normalize(load_images(files, spec), spec)]
    else:
        raise UserError(f"calibration data '{path}' is neither an .npz file nor an image "
                        "folder.", "pass an existing .npz (keys = input names) or folder.")
    feeds = [np.ascontiguousarray(f, dtype=np.float32) if f.dtype.kind == "f" else f
             for f in feeds]
    batch = 8
    calibration = [[f[i:min(i + batch, count)] for f in feeds] for i in range(0, count, batch)]
    return calibration, [f[count:] for f in feeds]
