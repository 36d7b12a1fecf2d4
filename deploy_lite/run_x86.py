"""Run a bundle on x86 with Paddle Lite's Python runtime: the reference the C++ app mirrors.

    python deploy_lite/run_x86.py bundles/quickstart_x86 digit.png [more.png ...] [--top-k 3]
    python deploy_lite/run_x86.py bundles/quickstart_x86 batch.npy --json

Inputs are image files (preprocessed exactly as bundle.json says) or .npy tensors that are
already preprocessed ([N, C, H, W] or [C, H, W]). Needs numpy, Pillow and paddlelite
(2.13rc0, the x86-64 cp310 wheel); not paddle and not paddleopt, so it behaves like an app.

Only x86 bundles run here: an ARM or OpenCL .nb *loads* on x86 and returns garbage (its
kernels are missing and nothing says so), so they are refused. Run those with app/ on the
device.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle import BundleError, load_bundle  # noqa: E402

RUNNABLE_TARGETS = ("x86",)


def load_image(path: str | Path, pre: dict[str, Any]) -> np.ndarray:
    """One image file -> [C, H, W] float32, following bundle.json's preprocess steps."""
    from PIL import Image

    resample = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
                "bicubic": Image.BICUBIC}[pre["resize"]]
    with Image.open(path) as img:
        img = img.convert("L" if pre["color"] == "gray" else "RGB")
        height, width = pre["size"]
        img = img.resize((width, height), resample)
        arr = np.asarray(img, dtype=np.float32)
    arr = arr / np.float32(255.0)  # the same float32 division paddleopt and the app do
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if pre["invert"]:
        arr = np.float32(1.0) - arr
    mean = np.asarray(pre["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre["std"], dtype=np.float32).reshape(-1, 1, 1)
    return ((arr - mean) / std).astype(np.float32)


def load_inputs(paths: list[str], bundle: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Image files or .npy tensors -> one batch and a display name per row."""
    spec = bundle["inputs"][0]
    if all(p.endswith(".npy") for p in paths):
        arrays = [np.load(p).astype(spec["dtype"]) for p in paths]
        rank = len(spec["shape"])
        arrays = [a if a.ndim == rank else a[None] for a in arrays]
        names = [f"{p}[{i}]" for p, a in zip(paths, arrays) for i in range(len(a))]
        return np.concatenate(arrays), names
    pre = bundle["preprocess"]
    if pre.get("type") != "image":
        raise BundleError(f"this bundle's preprocess is '{pre.get('type')}'; run_x86 turns "
                          f"images into tensors only. Pass preprocessed .npy tensors instead.")
    return np.stack([load_image(p, pre) for p in paths]), list(paths)


class Runner:
    """A Paddle Lite LightPredictor on a bundle's model.nb (x86 bundles only)."""

    def __init__(self, bundle_dir: str | Path) -> None:
        self.bundle, nb_file = load_bundle(bundle_dir)  # sha256 checked before Lite sees it
        model = self.bundle["model"]
        if model["target"] not in RUNNABLE_TARGETS:
            raise BundleError(
                f"'{bundle_dir}' holds a Paddle Lite model for {model['target']}; an "
                f"{model['target']} .nb loads on x86 but returns garbage. Run it on the device "
                f"(deploy_lite/app), or bundle the x86 conversion (to_lite target: x86) to test "
                f"here.")
        if model["precision"] == "int8":
            raise BundleError("x86 int8 .nb files return NaN/garbage with paddlelite "
                              "2.13rc0; bundle the fp32 x86 conversion.")
        from paddlelite.lite import MobileConfig, create_paddle_predictor

        config = MobileConfig()
        config.set_model_from_file(str(nb_file))
        self.predictor = create_paddle_predictor(config)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One input batch -> the first output (copied: Lite reuses its buffers)."""
        self.predictor.get_input(0).from_numpy(np.ascontiguousarray(batch))
        self.predictor.run()
        return np.array(self.predictor.get_output(0).numpy(), copy=True)


def top_k(logits: np.ndarray, labels: list[str], k: int) -> list[list[dict[str, Any]]]:
    """Softmax per row, the k best classes (label, index, score)."""
    out = []
    for row in np.asarray(logits, dtype=np.float64).reshape(len(logits), -1):
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        order = np.argsort(-probs)[:k]
        out.append([{"class_id": int(i), "label": labels[i] if i < len(labels) else str(int(i)),
                     "score": float(probs[i])} for i in order])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="bundle folder (model.nb + bundle.json)")
    parser.add_argument("inputs", nargs="+", help="image files, or preprocessed .npy tensors")
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="run N times, report latency")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        runner = Runner(args.bundle)
        batch, names = load_inputs(args.inputs, runner.bundle)
    except (BundleError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    times = []
    for _ in range(max(args.repeat, 1)):
        start = time.perf_counter()
        logits = runner.run(batch)
        times.append((time.perf_counter() - start) * 1e3)
    results = [{"input": name, "predictions": preds}
               for name, preds in zip(names, top_k(logits, runner.bundle["labels"], args.top_k))]
    if args.json:
        print(json.dumps({"results": results, "latency_ms": times}, indent=2))
    else:
        for r in results:
            print(f"{r['input']}: " + ", ".join(f"{p['label']} ({p['score']:.3f})"
                                                 for p in r["predictions"]))
        if args.repeat > 1:
            print(f"latency over {len(times)} runs: p50 {np.percentile(times, 50):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
