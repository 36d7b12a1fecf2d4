"""Built-in datasets, image folders, preprocessing and loader knobs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from paddleopt.config.schema import parse
from paddleopt.config.sections import DataConfig
from paddleopt.data.loaders import build_data, data_from_manifest
from paddleopt.data.preprocess import image_preprocess, preprocess_images
from paddleopt.utils.errors import ConfigError, UserError


def test_mnist_is_real_and_split():
    bundle = build_data(parse(DataConfig, {"dataset": "mnist", "eval_subset": 100}), 0)
    assert len(bundle.splits.train) == 50000 and len(bundle.splits.test) == 10000
    feeds, labels = bundle.eval_feeds()
    assert feeds[0].shape == (100, 1, 28, 28) and feeds[0].dtype == np.float32
    assert set(np.unique(labels)) <= set(range(10)) and len(np.unique(labels)) == 10
    # normalized with the MNIST mean/std recorded in the manifest
    assert abs(float(feeds[0].mean())) < 0.3
    assert bundle.manifest_fields()["preprocess"]["mean"] == [0.1307]
    # validation samples (for decisions inside stages) come from val, not from test
    val, val_labels = bundle.val_feeds(20)
    assert val[0].shape == (20, 1, 28, 28)
    assert (val_labels == bundle.splits.val.labels[:20]).all()


def make_folder(root, classes=("cat", "dog"), per_class=5, size=(12, 10)):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random(size) * 100 + c * 150).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def test_image_folder_dataset_and_loader_knobs(tmp_path):
    root = make_folder(tmp_path / "imgs")
    cfg = parse(DataConfig, {"dataset": "image_folder", "root": str(root), "batch_size": 4,
                             "num_workers": 1, "prefetch_factor": 2, "val_fraction": 0.2,
                             "preprocess": {"size": [8, 8], "channels": 1}})
    bundle = build_data(cfg, seed=0)
    assert bundle.splits.labels == ["cat", "dog"]
    assert len(bundle.splits.train) == 8 and len(bundle.eval_split) == 2
    batches = list(bundle.train_loader())
    assert len(batches) == 2
    x, y = batches[0]
    assert list(x.shape) == [4, 1, 8, 8]
    # the same preprocess turns a raw file into the same tensor the dataset produced
    feeds, _ = bundle.eval_feeds()
    again = preprocess_images([bundle.eval_split.images[0]], bundle.manifest_fields()["preprocess"])
    np.testing.assert_allclose(again[0], feeds[0][0], atol=1e-6)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.root is not set"):
        build_data(parse(DataConfig, {"dataset": "image_folder"}), 0)
    (tmp_path / "one").mkdir()
    with pytest.raises(ConfigError, match="class folder"):
        build_data(parse(DataConfig, {"dataset": "image_folder", "root": str(tmp_path)}), 0)


def test_preprocess_validation_and_bad_images(tmp_path):
    with pytest.raises(ConfigError, match="std values must be > 0"):
        image_preprocess("mnist", {"std": [0.0]})
    with pytest.raises(ConfigError, match="1 or 3 values"):
        image_preprocess("mnist", {"channels": 3, "mean": [0.1, 0.2]})
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match="not a readable image"):
        preprocess_images([bad], image_preprocess("mnist", {}).__dict__)


def test_digits_rebuilt_from_manifest_fields():
    bundle = build_data(parse(DataConfig, {"dataset": "digits"}), 0)
    fields = bundle.manifest_fields()
    again = data_from_manifest(fields["dataset"], fields["preprocess"], eval_samples=50)
    a, ya = bundle.eval_feeds(50)
    b, yb = again.eval_feeds()
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_allclose(a[0], b[0])
