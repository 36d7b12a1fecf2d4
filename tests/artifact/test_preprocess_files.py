"""Preprocessing files written by PaddleClas / PaddleX / PaddleDetection exports."""
from __future__ import annotations

import pytest

from paddleopt.artifact.preprocess_files import read_preprocess_file, write_preprocess_file

PADDLECLAS = """\
Global:
  model_name: ResNet50
PreProcess:
  transform_ops:
  - ResizeImage:
      resize_short: 256
  - CropImage:
      size: 224
  - NormalizeImage:
      channel_num: 3
      mean: [0.485, 0.456, 0.406]
      order: ''
      scale: 0.00392157
      std: [0.229, 0.224, 0.225]
  - ToCHWImage: null
PostProcess:
  Topk:
    topk: 5
    label_list: [cat, dog]
"""

PADDLEDET = """\
mode: paddle
arch: YOLO
Preprocess:
- interp: 2
  keep_ratio: false
  target_size: [320, 416]
  type: Resize
- is_scale: true
  mean: [0.0, 0.0, 0.0]
  std: [1.0, 1.0, 1.0]
  type: NormalizeImage
- type: Permute
label_list: [person, bicycle]
"""


def test_paddleclas_deploy_config(tmp_path) -> None:
    path = tmp_path / "inference.yml"
    path.write_text(PADDLECLAS)
    read = read_preprocess_file(path)
    assert read["preprocess"] == {"type": "image", "channels": 3, "resize_short": 256,
                                  "size": [224, 224], "mean": [0.485, 0.456, 0.406],
                                  "std": [0.229, 0.224, 0.225]}
    assert read["labels"] == ["cat", "dog"] and read["notes"] == []


def test_paddledetection_infer_cfg(tmp_path) -> None:
    path = tmp_path / "infer_cfg.yml"
    path.write_text(PADDLEDET)
    read = read_preprocess_file(path)
    assert read["preprocess"]["size"] == [320, 416]  # target_size is [h, w]
    assert read["preprocess"]["resize"] == "bicubic"
    assert read["labels"] == ["person", "bicycle"]


def test_written_file_reads_back(tmp_path) -> None:
    pre = {"type": "image", "size": [48, 192], "channels": 3, "mean": [0.5] * 3,
           "std": [0.5] * 3, "resize": "bilinear"}
    path = write_preprocess_file(tmp_path, pre, ["0", "180"])
    read = read_preprocess_file(path)
    assert read["preprocess"]["size"] == [48, 192]
    assert read["preprocess"]["mean"] == [0.5] * 3 and read["labels"] == ["0", "180"]


def test_file_without_a_size_is_an_error(tmp_path) -> None:
    from paddleopt.utils.errors import UserError

    path = tmp_path / "inference.yml"
    path.write_text("PreProcess:\n  transform_ops:\n  - ToCHWImage: null\n")
    with pytest.raises(UserError, match="no input size"):
        read_preprocess_file(path)
