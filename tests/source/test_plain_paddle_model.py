"""A model built in plain Paddle (not from paddleopt's registry), saved as inference.pdmodel
with a PaddleClas-style inference.yml, goes through every command from the CLI alone: check,
convert (onnx, lite arm, lite x86), quantize with image-folder calibration, bench --matrix,
infer on a PNG and serve. No training config anywhere."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import serve_process

PREPROCESS_YML = """\
PreProcess:
  transform_ops:
  - ResizeImage:
      size: [32, 32]
  - NormalizeImage:
      scale: 1.0/255.0
      mean: [0.485, 0.456, 0.406]
      std: [0.229, 0.224, 0.225]
      order: hwc
  - ToCHWImage: null
PostProcess:
  Topk:
    topk: 1
    label_list: [sky, leaf, stone, water]
"""


@pytest.fixture(scope="module")
def user_model(tmp_path_factory) -> Path:
    """What a Paddle user has: their own nn.Layer, saved with paddle.jit.save."""
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    nn = paddle.nn

    class UserNet(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2D(3, 16, 3, padding=1), nn.BatchNorm2D(16), nn.ReLU(),
                nn.Conv2D(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2D(32, 32, 3, padding=1, groups=32), nn.ReLU(),
                nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(32, 4))

        def forward(self, x):
            return self.body(x)

    paddle.seed(0)
    net = UserNet()
    net.eval()
    folder = tmp_path_factory.mktemp("user") / "model"
    paddle.jit.save(net, str(folder / "inference"),
                    input_spec=[paddle.static.InputSpec([None, 3, 32, 32], "float32", "x")])
    (folder / "inference.yml").write_text(PREPROCESS_YML)
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """48 real photo crops (sklearn's sample images) as PNG files."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    images = load_sample_images().images
    for i in range(48):
        img = images[i % len(images)]
        top, left = rng.integers(0, img.shape[0] - 96), rng.integers(0, img.shape[1] - 96)
        Image.fromarray(img[top:top + 96, left:left + 96]).save(folder / f"{i:02d}.png")
    return folder


@pytest.mark.slow  # ~100 s: conversions, PTQ + INT8 probe, a 5-row bench matrix
def test_check_convert_quantize_bench_infer(cli, user_model, photos, tmp_path) -> None:
    proc = cli("check", str(user_model), "--target", "onnx", "arm", "x86")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": deployable") == 3

    conv = tmp_path / "convert"
    proc = cli("convert", str(user_model), "--to", "onnx", "lite-arm", "lite-x86",
               "--work-dir", str(conv), "--json", str(tmp_path / "conv.json"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "conv.json").read_text())
    assert set(out) == {"onnx", "lite_arm", "lite_x86"}
    assert out["onnx"]["checks"]["parity_onnxruntime_vs_paddle_inference_max_abs_diff"] < 1e-4
    assert (Path(out["lite_arm"]["path"]) / "model.nb").is_file()

    quant = tmp_path / "quantize"
    proc = cli("quantize", str(user_model), "--calib", str(photos), "--work-dir", str(quant),
               "--json", str(tmp_path / "q.json"))
    result = json.loads((tmp_path / "q.json").read_text())
    # Either INT8 kept >= 99% top-1 agreement with fp32 on the 24 held-out photos, or it said
    # it could not (exit 3) and the fp32 model stays.
    if result["kept"] == "int8":
        assert proc.returncode == 0, proc.stderr
        assert result["score"] >= 0.99 and result["metric"] == "top1_agreement"
        manifest = json.loads((Path(result["artifact"]) / "manifest.json").read_text())
        assert manifest["checks"]["int8_vs_fp32"]["samples"] == 24
        assert manifest["checks"]["int8"]["int8_convs"] >= 1
        assert manifest["quantization"]["calibration"]["samples"] == 24
    else:
        assert proc.returncode == 3 and "fp32 model stays" in proc.stdout

    proc = cli("bench", str(user_model), "--matrix", "--iters", "5", "--warmup", "1",
               "--threads", "1", "--artifacts", *[out[k]["path"] for k in out],
               *([result["artifact"]] if result["artifact"] else []),
               "--json", str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    backends = {r["backend"] for r in rows}
    assert {"paddle_inference", "onnxruntime", "lite"} <= backends
    assert all(r["input_shapes"]["x"] == [1, 3, 32, 32] for r in rows)

    png = sorted(photos.glob("*.png"))[0]
    proc = cli("infer", str(user_model), str(png), "--json")
    assert proc.returncode == 0, proc.stderr
    pred = json.loads(proc.stdout)[0]["predictions"][0]
    assert pred["label"] in ("sky", "leaf", "stone", "water")


def test_serve_answers_for_the_bare_folder(user_model) -> None:
    import httpx

    with serve_process(str(user_model)) as url:
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
        r = httpx.post(url + "/predict", json={"inputs": {"x": x.tolist()}}, timeout=60)
        assert r.status_code == 200, r.text
        outputs = r.json()["outputs"]
        assert len(next(iter(outputs.values()))) == 2
