"""Sample input images written from the bundled datasets, in both polarities: what a new user
feeds to `paddleopt infer` first (the inverted copies show its brightness warning and
``--invert``). ``python -m paddleopt.data.samples mnist examples/inputs`` wrote the shipped
ones."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def write_samples(dataset: str, out_dir: str | Path, digits: tuple[int, ...] = (7, 2),
                  scale: int = 1) -> list[Path]:
    """For each digit: the first test sample of that class as ``{dataset}_{d}.png``
    (white on black, as trained) and ``{dataset}_{d}_inverted.png`` (black on white, like a
    drawing on paper). ``scale`` enlarges the PNG (infer resizes to the model's size)."""
    from PIL import Image

    from paddleopt.data.datasets import load_splits

    splits = load_splits(dataset, None, 0.1, 0, None)
    images, labels = splits.test.images, np.asarray(splits.test.labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for digit in digits:
        index = int(np.flatnonzero(labels == digit)[0])
        pixels = np.clip(np.asarray(images[index])[0] * 255.0, 0, 255).round().astype(np.uint8)
        for suffix, arr in (("", pixels), ("_inverted", 255 - pixels)):
            img = Image.fromarray(arr, mode="L")
            if scale > 1:
                img = img.resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.NEAREST)
            path = out / f"{dataset}_{digit}{suffix}.png"
            img.save(path)
            written.append(path)
    return written


if __name__ == "__main__":
    for p in write_samples(sys.argv[1], sys.argv[2]):
        print(p)
