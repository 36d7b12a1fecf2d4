"""Numerical parity of a converted model against its reference, one way for every stage.

``export`` compares Paddle Inference with the dygraph model; ``to_onnx`` and ``to_lite``
compare ONNX Runtime / Paddle Lite with Paddle Inference. Each builds a ``ParityResult``
(``measure``) and ``enforce``s it, which records it in ``manifest.checks`` under
``parity_<runtime>_vs_<reference>_<field>`` (``max_abs_diff``, ``relative_diff``,
``tolerance``, ``output_scale``, ``metric``) plus ``parity_samples`` and ``parity_inputs``,
then raises when it is out of tolerance.
"""
from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, Manifest


@dataclass
class ParityResult:
    """How far ``runtime``'s outputs are from ``reference``'s on the same inputs.

    int8 models are judged by what they decide, on real inputs: ``agreement`` (top-1 per
    output position, mask IoU for probability maps; ``paddleopt.metrics.agreement``) must
    reach ``min_agreement``. Two int8 runtimes round differently, and on a deep model (the
    PP-OCRv4 detector/recogniser) the outputs move by a large share of their range while
    every decision stays. On random inputs nothing an int8 model decides means anything:
    the numbers are recorded, not judged. Outputs with no agreement measure (no class axis)
    fall back on ``relative_diff`` (max abs diff / largest |reference output|) against
    ``int8_tolerance``; a difference within the fp32 ``tolerance`` always passes. fp32
    models are judged on the max abs diff against ``tolerance``, scaled by the largest
    |output| when that exceeds 1 and ``scale_tolerance`` is set (rounding grows with it).
    """

    runtime: str  # what ran the converted model: paddle_inference, onnxruntime, lite
    reference: str  # what it is compared with: dygraph, paddle_inference
    max_abs_diff: float
    output_scale: float  # largest |reference output|
    samples: int
    inputs: str  # "eval data" or "random"
    tolerance: float
    int8_tolerance: float | None = None  # set: an int8 model (see the class docstring)
    scale_tolerance: bool = True
    agreement: float | None = None  # int8: decisions kept vs the reference
    agreement_metric: str = ""
    min_agreement: float = 0.95

    @property
    def judged(self) -> bool:
        """False for an int8 model compared on random inputs (recorded only)."""
        return self.int8_tolerance is None or self.inputs != "random"

    @property
    def key(self) -> str:
        return f"parity_{self.runtime}_vs_{self.reference}"

    @property
    def metric(self) -> Literal["max_abs", "relative", "agreement"]:
        if self.int8_tolerance is None:
            return "max_abs"
        return "agreement" if self.agreement is not None else "relative"

    @property
    def relative_diff(self) -> float:
        scale = self.output_scale
        return self.max_abs_diff / scale if scale > 0 else self.max_abs_diff

    @property
    def allowed(self) -> float:
        """The max abs diff allowed for an fp32 comparison."""
        return self.tolerance * (max(1.0, self.output_scale) if self.scale_tolerance else 1.0)

    def failure(self) -> str | None:
        """Why the comparison fails, or None when it passes."""
        diff = self.max_abs_diff
        if not np.isfinite(diff):
            return f"{self.runtime} returned NaN/Inf where {_NAMES[self.reference]} did not."
        if not self.judged:
            return None
        if self.agreement is not None:
            if self.agreement < self.min_agreement:
                return (f"the int8 model on {self.runtime} keeps {self.agreement:.1%} of "
                        f"{_NAMES[self.reference]}'s decisions ({self.agreement_metric}) on "
                        f"{self.samples} real inputs (min_agreement {self.min_agreement:g}).")
            return None
        if self.int8_tolerance is not None:
            if self.relative_diff > self.int8_tolerance and diff > self.tolerance:
                return (f"the int8 model on {self.runtime} differs from "
                        f"{_NAMES[self.reference]} (fake-quant in fp32) by {diff:.3g}, "
                        f"{self.relative_diff:.1%} of the output range "
                        f"(int8_tolerance {self.int8_tolerance:g}).")
            return None
        if diff > self.allowed:
            limit = (f"allowed {self.allowed:.3g}: tolerance {self.tolerance:g} x max(1, "
                     f"largest |output| {self.output_scale:.3g})" if self.scale_tolerance
                     else f"tolerance {self.tolerance:g}")
            return (f"{self.runtime} output differs from {_NAMES[self.reference]} by "
                    f"{diff:.3g} ({limit}).")
        return None

    def record(self, manifest: Manifest) -> None:
        manifest.checks.update({
            f"{self.key}_max_abs_diff": self.max_abs_diff,
            f"{self.key}_relative_diff": self.relative_diff,
            f"{self.key}_tolerance": (self.int8_tolerance if self.int8_tolerance is not None
                                      else self.tolerance),
            f"{self.key}_output_scale": self.output_scale,
            f"{self.key}_metric": self.metric,
            **({f"{self.key}_agreement": self.agreement,
                f"{self.key}_agreement_metric": self.agreement_metric,
                f"{self.key}_min_agreement": self.min_agreement}
               if self.agreement is not None else {}),
            **({} if self.judged else {
                f"{self.key}_judged": "no: int8 on random inputs (recorded only); give real "
                                      "inputs (the dataset, or source.inputs) to judge it"}),
            "parity_samples": self.samples,
            "parity_inputs": self.inputs,
        })

    def enforce(self, manifest: Manifest, fix: str = "") -> ParityResult:
        """Record into ``manifest.checks``, then raise UserError when out of tolerance."""
        self.record(manifest)
        problem = self.failure()
        if problem is not None:
            if not np.isfinite(self.max_abs_diff):
                fix = "the converted model is broken; report it with the model."
            elif self.int8_tolerance is not None:
                fix = fix or ("check the quantization (calibration data, onnx_format; "
                              "paddleopt debug names the layer where it parts), or lower "
                              "int8_min_agreement / raise int8_tolerance.")
            raise UserError(problem, fix or (
                "raise tolerance if the difference is fp32 rounding in a deep model; "
                "otherwise the conversion is wrong (report the model)."))
        return self


_NAMES = {"paddle_inference": "Paddle Inference", "dygraph": "the dygraph model"}


def not_run(manifest: Manifest, runtime: str, reference: str, reason: str) -> None:
    """Record why no parity check ran (e.g. an ARM .nb on this x86 machine)."""
    manifest.checks[f"parity_{runtime}_vs_{reference}"] = f"not run: {reason}"


def max_abs_diff(expected: list[np.ndarray], actual: list[np.ndarray]) -> float:
    if len(expected) != len(actual):
        raise UserError(f"the converted model has {len(actual)} outputs, the source "
                        f"{len(expected)}.", "report this model; the conversion lost outputs.")
    diffs = []
    for e, a in zip(expected, actual):
        if e.shape != a.shape:
            raise UserError(f"output shape {list(a.shape)} differs from the source's "
                            f"{list(e.shape)}.", "report this model; the conversion is wrong.")
        diffs.append(float(np.abs(e.astype(np.float64) - a.astype(np.float64)).max())
                     if e.size else 0.0)
    return max(diffs) if diffs else 0.0


def measure(runtime: str, reference: str, expected: list[np.ndarray],
            actual: list[np.ndarray], feeds: list[np.ndarray], inputs: str, tolerance: float,
            int8_tolerance: float | None = None, scale_tolerance: bool = True,
            min_agreement: float = 0.95) -> ParityResult:
    """Compare ``actual`` (``runtime``) with ``expected`` (``reference``) on ``feeds``;
    ``int8_tolerance`` set = an int8 model (judged by its agreement on real inputs)."""
    expected = [np.asarray(e) for e in expected]
    found: dict[str, Any] = {}
    if int8_tolerance is not None:
        from paddleopt.metrics.agreement import agreement

        try:
            found = agreement(actual, expected)
        except ValueError:  # outputs with no class axis / map: the relative diff judges
            found = {}
        if found.get("metric") not in ("top1_agreement", "mask_iou"):
            found = {}
    return ParityResult(
        runtime=runtime, reference=reference, max_abs_diff=max_abs_diff(expected, actual),
        output_scale=max((float(np.abs(e).max()) for e in expected if e.size), default=0.0),
        samples=int(feeds[0].shape[0]) if feeds and feeds[0].ndim else 1, inputs=inputs,
        tolerance=tolerance, int8_tolerance=int8_tolerance, scale_tolerance=scale_tolerance,
        agreement=found.get("score"), agreement_metric=found.get("metric", ""),
        min_agreement=min_agreement)


# -- the inputs and the two sides ---------------------------------------------------------------

def sample_feeds(src: Artifact, count: int) -> tuple[list[np.ndarray], str]:
    """``count`` inputs for a parity check and where they came from ("eval data"/"random").

    Real samples when the artifact records its dataset (int8 models are only meaningful on
    activations like the calibration data), seeded random inputs otherwise. Random inputs are
    enough for fp32 parity: the check compares two runtimes, not accuracy.
    """
    from paddleopt.deploy.bench import make_feeds

    manifest = src.manifest
    fixed = [s.shape[0] for s in manifest.io.inputs if s.shape and s.shape[0] > 0]
    if fixed:  # exported with a fixed batch: the model takes exactly that many
        count = fixed[0]
    if manifest.dataset:
        try:
            from paddleopt.data.loaders import data_from_manifest

            bundle = data_from_manifest(manifest.dataset, manifest.preprocess, count)
            feeds = bundle.eval_feeds(count)[0] if bundle is not None else []
        except (UserError, OSError, ImportError, KeyError, ValueError):
            feeds = []  # no data on this machine: random inputs still compare two runtimes
        if len(feeds) == len(manifest.io.inputs) and all(len(f) for f in feeds):
            return [np.ascontiguousarray(f[:count], dtype=spec.dtype)
                    for f, spec in zip(feeds, manifest.io.inputs)], "eval data"
    real = _source_inputs(manifest, count)
    if real is not None:
        return real
    from paddleopt.artifact.shapes import dynamic_dim

    return make_feeds(manifest.io.inputs, count, dynamic_dim=dynamic_dim(manifest)), "random"


def _source_inputs(manifest: Any, count: int) -> tuple[list[np.ndarray], str] | None:
    """Real inputs a pipeline source recorded (``source.inputs``: an .npz with one array per
    input), kept through ptq into its int8 model."""
    path = manifest.model.get("inputs_npz") if isinstance(manifest.model, dict) else None
    if not path:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            feeds = [data[s.name][:count] for s in manifest.io.inputs]
    except (OSError, KeyError, ValueError):
        return None  # moved or renamed since: random inputs still compare two runtimes
    return ([np.ascontiguousarray(f, dtype=s.dtype) for f, s in zip(feeds, manifest.io.inputs)],
            f"real inputs ({Path(path).name})")


def paddle_reference(src: Artifact, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """Paddle Inference outputs with native fp32 kernels (oneDNN off).

    For int8 models this runs the fake-quant ops in fp32: the arithmetic the model describes,
    which is what a converted model must reproduce (oneDNN int8 would add its own rounding).
    """
    return backend_outputs(src, "paddle_inference", feeds,
                           {"onednn": False, "onednn_int8": False, "threads": 1})


def backend_outputs(artifact: Artifact, backend: str, feeds: list[np.ndarray],
                    options: dict[str, Any] | None = None) -> list[np.ndarray]:
    from paddleopt.deploy.predictor import load_predictor

    predictor = load_predictor(artifact, backend, options or {})
    return [np.asarray(o) for o in predictor.run(feeds)]


def dygraph_outputs(model: Any, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """A live ``paddle.nn.Layer``'s outputs (no grad) as numpy arrays."""
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    with paddle.no_grad():
        out = model(*[paddle.to_tensor(f) for f in feeds])
    return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
