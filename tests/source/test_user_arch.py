"""model.arch beyond the built-ins: a user factory (package.module:function) and
paddle.vision.models by name, with pretrained: FILE.pdparams."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from paddleopt.models.registry import build_model, check_arch
from paddleopt.utils.errors import ConfigError

USER_MODULE = '''
import paddle.nn as nn

def build(num_classes=10, hidden=8):
    return nn.Sequential(nn.Conv2D(3, hidden, 3), nn.ReLU(), nn.AdaptiveAvgPool2D(1),
                         nn.Flatten(), nn.Linear(hidden, num_classes))
'''


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models:build"
    sys.modules.pop("my_models", None)


def test_user_factory_gets_num_classes_and_kwargs(user_pkg, tmp_path) -> None:
    import paddle

    layer = build_model({"arch": user_pkg, "num_classes": 5, "in_channels": 3,
                         "width_mult": 1.0, "kwargs": {"hidden": 4}})
    assert layer(paddle.zeros([2, 3, 8, 8])).shape == [2, 5]
    # Its weights reload through pretrained:, shape-mismatched heads stay initialised.
    path = tmp_path / "w.pdparams"
    paddle.save(layer.state_dict(), str(path))
    again = build_model({"arch": user_pkg, "num_classes": 5, "in_channels": 3,
                         "width_mult": 1.0, "kwargs": {"hidden": 4}, "pretrained": str(path)})
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[key].numpy(), value.numpy())
    other = build_model({"arch": user_pkg, "num_classes": 3, "in_channels": 3,
                         "width_mult": 1.0, "kwargs": {"hidden": 4}, "pretrained": str(path)})
    np.testing.assert_array_equal(other.state_dict()["0.weight"].numpy(),
                                  layer.state_dict()["0.weight"].numpy())


def test_paddle_vision_model_by_name() -> None:
    import paddle

    layer = build_model({"arch": "mobilenet_v2", "num_classes": 4, "in_channels": 3,
                         "width_mult": 1.0, "kwargs": {"scale": 0.25}})
    layer.eval()
    assert layer(paddle.zeros([1, 3, 32, 32])).shape == [1, 4]
    with pytest.raises(ConfigError, match="3-channel"):
        build_model({"arch": "resnet18", "num_classes": 4, "in_channels": 1,
                     "width_mult": 1.0, "kwargs": {}})


def test_bad_factories_fail_at_plan() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        check_arch("no_such_module_xyz:build")
    with pytest.raises(ConfigError, match="no function 'nope'"):
        check_arch("paddleopt.models.vision:nope")


def test_paddleclas_label_list_dataset(tmp_path) -> None:
    from PIL import Image

    from paddleopt.config.sections import DataConfig
    from paddleopt.data.loaders import build_data

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    lines = {"train_list.txt": [], "val_list.txt": []}
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(
            tmp_path / "img" / f"{i}.png")
        lines["val_list.txt" if i >= 9 else "train_list.txt"].append(f"img/{i}.png {i % 3}")
    for name, rows in lines.items():
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    (tmp_path / "label_list.txt").write_text("0 cat\n1 dog\n2 fox\n")
    data = build_data(DataConfig(dataset="label_list", root=str(tmp_path / "train_list.txt"),
                                 preprocess={"size": [8, 8], "channels": 3}), 0)
    feeds, labels = data.eval_feeds()
    assert feeds[0].shape == (3, 3, 8, 8) and labels.tolist() == [0, 1, 2]
    assert data.splits.labels == ["cat", "dog", "fox"]
    (tmp_path / "bad.txt").write_text("img/0.png\n")
    with pytest.raises(ConfigError, match="not 'image_path label'"):
        build_data(DataConfig(dataset="label_list", root=str(tmp_path / "bad.txt"),
                              preprocess={"size": [8, 8], "channels": 3}), 0)
