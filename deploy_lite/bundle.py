"""Make an on-device bundle from a paddleopt ``lite`` artifact: ``model.nb`` + ``bundle.json``.

    python deploy_lite/bundle.py work_dirs/quickstart/04_to_lite_arm bundles/quickstart_arm
    python deploy_lite/bundle.py work_dirs/quickstart/05_to_lite_x86 bundles/quickstart_x86

``bundle.json`` is everything the app needs besides the model, so the device never sees the
training config or the manifest (format in deploy_lite/README.md):

- ``model``: file name, sha256, size, Lite target (arm/x86/opencl), precision, opt version;
- ``inputs`` / ``outputs``: names, shapes (-1 = any), dtypes, in the predictor's order;
- ``preprocess``: how an image becomes the input tensor, as explicit ordered steps;
- ``labels``: class names, index = output position;
- ``source``: the artifact it came from, the sha256 of its manifest (which holds the sha256 of
  every file and the whole lineage), each lineage stage, and the package versions;
- ``checks``: what was verified before shipping (parity vs Paddle Inference, sizes).

Needs only the Python standard library (no paddle), so it runs anywhere the work dir is.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

BUNDLE_FORMAT = "paddleopt-lite-bundle"
BUNDLE_VERSION = 1
BUNDLE_JSON = "bundle.json"
MODEL_NAME = "model.nb"


class BundleError(Exception):
    """The artifact cannot be bundled; the message says why and what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def preprocess_steps(pre: dict[str, Any]) -> dict[str, Any]:
    """The manifest's preprocess spec, spelled out as the steps an app performs in order.

    paddleopt's Python preprocessing (paddleopt.data.preprocess) is the reference: decode ->
    grayscale or RGB -> resize (Pillow's filter) -> /255 -> optional invert (1 - x) ->
    (x - mean) / std per channel -> NCHW float32.
    """
    if pre.get("type") != "image":
        # Text (tokenizer) or no preprocessing: recorded as is; the demo app handles images.
        return {"type": pre.get("type", "none"), **{k: v for k, v in pre.items() if k != "type"}}
    channels = int(pre.get("channels", 1))
    mean = [float(v) for v in pre.get("mean", [0.0])]
    std = [float(v) for v in pre.get("std", [1.0])]
    return {
        "type": "image",
        "color": "gray" if channels == 1 else "rgb",
        "channels": channels,
        "size": [int(v) for v in pre.get("size", [28, 28])],  # [height, width]
        "resize": pre.get("resize", "bilinear"),  # Pillow filter: bilinear | bicubic | nearest
        "scale": 1.0 / 255.0,
        "invert": bool(pre.get("invert", False)),
        "mean": mean * channels if len(mean) == 1 else mean,
        "std": std * channels if len(std) == 1 else std,
        "layout": "NCHW",
        "dtype": "float32",
        "steps": ["decode", "to_gray" if channels == 1 else "to_rgb", "resize", "scale",
                  *(["invert"] if pre.get("invert") else []), "normalize", "to_nchw"],
    }


def make_bundle(artifact_dir: str | Path, out_dir: str | Path, force: bool = False
                ) -> dict[str, Any]:
    """Copy the artifact's .nb into ``out_dir`` and write ``bundle.json``; return the JSON.

    Raises:
        BundleError: not a lite artifact, a file that does not match its manifest's sha256,
            or ``out_dir`` exists (without ``force``).
    """
    artifact_dir, out_dir = Path(artifact_dir), Path(out_dir)
    manifest_path = artifact_dir / "manifest.json"
    if not manifest_path.is_file():
        raise BundleError(f"'{artifact_dir}' has no manifest.json; pass a folder written by "
                          f"paddleopt's to_lite stage (e.g. work_dirs/x/04_to_lite_arm).")
    manifest_bytes = manifest_path.read_bytes()
    manifest = json.loads(manifest_bytes)
    if manifest.get("kind") != "lite":
        raise BundleError(f"'{artifact_dir}' is a {manifest.get('kind')} artifact; bundles are "
                          f"made from lite (.nb) artifacts. Add a to_lite stage and bundle its "
                          f"folder.")
    nb_rel = manifest.get("files", {}).get("model")
    nb_file = artifact_dir / nb_rel if nb_rel else None
    if nb_file is None or not nb_file.is_file():
        raise BundleError(f"'{artifact_dir}' lacks its .nb file ({nb_rel}); re-run to_lite.")
    digest = sha256_file(nb_file)
    expected = manifest.get("file_digests", {}).get("model")
    if expected and digest != expected:
        raise BundleError(f"'{nb_file}' does not match the sha256 in its manifest (corrupt or "
                          f"modified); re-run to_lite.")
    if out_dir.exists():
        if not force:
            raise BundleError(f"'{out_dir}' exists; pass --force to replace it.")
        shutil.rmtree(out_dir)
    lite = manifest.get("checks", {}).get("lite", {})
    checks = manifest.get("checks", {})
    bundle = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "model": {
            "file": MODEL_NAME,
            "sha256": digest,
            "size_bytes": nb_file.stat().st_size,
            "target": lite.get("target"),
            "precision": manifest.get("precision", "fp32"),
            "opt_version": lite.get("opt_version"),
            "int8_kernels": bool(lite.get("int8_kernels", False)),
            "quantization": manifest.get("quantization", {}),
        },
        "inputs": [{"name": s["name"], "shape": s["shape"], "dtype": s.get("dtype", "float32")}
                   for s in manifest.get("io", {}).get("inputs", [])],
        "outputs": [{"name": s["name"], "shape": s["shape"], "dtype": s.get("dtype", "float32")}
                    for s in manifest.get("io", {}).get("outputs", [])],
        "preprocess": preprocess_steps(manifest.get("preprocess", {})),
        "labels": list(manifest.get("labels", [])),
        "source": {
            "artifact": str(artifact_dir),
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "created": manifest.get("created", ""),
            "model": manifest.get("model", {}),
            "lineage": [{"stage": e.get("stage"), "type": e.get("type"),
                         "fingerprint": e.get("fingerprint")}
                        for e in manifest.get("lineage", [])],
            "versions": manifest.get("versions", {}),
        },
        "checks": {k: v for k, v in checks.items()
                   if k.startswith("parity") or k.endswith("size_bytes")},
    }
    out_dir.mkdir(parents=True)
    shutil.copyfile(nb_file, out_dir / MODEL_NAME)
    (out_dir / BUNDLE_JSON).write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    return bundle


def load_bundle(bundle_dir: str | Path, verify: bool = True) -> tuple[dict[str, Any], Path]:
    """(bundle.json, path of model.nb); with ``verify`` the .nb must match its sha256
    (Paddle Lite aborts the process on a file it cannot parse, so check first)."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / BUNDLE_JSON
    if not path.is_file():
        raise BundleError(f"'{bundle_dir}' has no {BUNDLE_JSON}; make one with "
                          f"python deploy_lite/bundle.py LITE_ARTIFACT {bundle_dir}")
    bundle = json.loads(path.read_text(encoding="utf-8"))
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"'{path}' is not a {BUNDLE_FORMAT} file.")
    nb_file = bundle_dir / bundle["model"]["file"]
    if not nb_file.is_file():
        raise BundleError(f"'{nb_file}' is missing; re-make the bundle.")
    if verify and sha256_file(nb_file) != bundle["model"]["sha256"]:
        raise BundleError(f"'{nb_file}' does not match the sha256 in {BUNDLE_JSON}; re-make "
                          f"the bundle.")
    return bundle, nb_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", help="lite artifact folder (written by to_lite)")
    parser.add_argument("out", help="bundle folder to create")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        bundle = make_bundle(args.artifact, args.out, args.force)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = bundle["model"]
    print(f"wrote {args.out}/{MODEL_NAME} ({m['size_bytes'] / 1024:.1f} KB, {m['target']} "
          f"{m['precision']}) and {args.out}/{BUNDLE_JSON}")
    if m["target"] != "x86":
        print(f"run it on the device: see deploy_lite/README.md (an {m['target']} .nb does not "
              f"run on x86).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
