"""The fp32 fallback as the lines ``paddleopt debug`` prints."""
from __future__ import annotations

from paddleopt.debug.fallback import Fallback


def describe_fallback(fb: Fallback) -> list[str]:
    score = fb.metric.rsplit(":", 1)[-1]
    lines = [f"fp32 fallback (score {score}; searched on {fb.search_samples} samples with "
             f"B's settings algo={fb.settings.get('algo')}): B's agreement "
             f"{fb.given_agreement:.4f}"]
    for s in fb.steps:
        if s.what == "layer":
            continue  # one line per convolution would drown the rest (debug.json has them)
        mark = "kept" if s.kept else "    "
        err = "" if s.output_error is None else f", output rel.err {s.output_error:.4g}"
        what = s.what if s.what != "add" else f"skip {len(s.skip_tensors)}: +{s.skip_tensors[-1]}"
        lines.append(f"  {mark} {what}: agreement {s.agreement:.4f}, {s.recovered:.0%} of the "
                     f"loss recovered{err}")
    lines.append(f"  chosen on the search inputs: agreement {fb.search_agreement:.4f} "
                 f"({fb.search_recovered:.0%} recovered)")
    if fb.verified:
        lines.append(f"verified on {fb.holdout_samples} held-out samples (A re-quantized with "
                     f"and without it, oneDNN INT8): {fb.baseline_agreement:.4f} -> "
                     f"{fb.agreement:.4f}, {fb.recovered:.0%} of the lost agreement recovered")
        if fb.speed_ms:
            sp = fb.speed_ms
            lines.append(f"speed (ms/sample, batch 8): fp32 {sp['fp32']:.3g}, INT8 "
                         f"{sp['int8']:.3g}, with the fallback {sp['fallback']:.3g} "
                         f"({sp['fp32'] / sp['fallback']:.2f}x fp32, "
                         f"{sp['fp32'] / sp['int8']:.2f}x for full INT8)")
    elif not fb.skip_tensors and fb.onednn_int8_ops == fb.settings.get("onednn_int8_ops"):
        lines.append("no fallback helped on the search inputs")
        return lines
    parts = []
    if fb.onednn_int8_ops != fb.settings.get("onednn_int8_ops"):
        parts.append(f"onednn_int8_ops=[{','.join(fb.onednn_int8_ops or [])}]")
    if fb.skip_tensors:
        parts.append(f"skip_tensors=[{','.join(fb.skip_tensors)}]")
    kept = [f"{len(fb.skip_tensors)} of {fb.int8_convs} convolutions"]
    if fb.fp32_types:
        kept.append(" and ".join(fb.fp32_types))
    lines.append(f"ptq setting (fp32: {'; '.join(kept)}):")
    lines.append("  e.g. paddleopt quantize MODEL_DIR --calib DATA "
                 + " ".join(f"-o ptq.{p}" for p in parts))
    return lines
