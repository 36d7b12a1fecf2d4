"""deploy_lite/: the bundle layout, the x86 Python runner against paddleopt's lite backend, and
the C++ app's parts that can be checked on an x86 host (preprocessing, bit-exact against
Python; main.cc against the Paddle Lite API it uses). The app itself needs an ARM device and
the ARM Paddle Lite library; neither exists here."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "deploy_lite"))
import bundle as lite_bundle  # noqa: E402
import run_x86  # noqa: E402

APP = REPO / "deploy_lite" / "app"


@pytest.fixture(scope="module")
def arts(tiny_deploy_run):
    return tiny_deploy_run.artifacts


@pytest.fixture(scope="module")
def x86_bundle(arts, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "x86"
    lite_bundle.make_bundle(arts["to_lite_x86"].path, out)
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Digit-like images of other sizes than the model's 8x8 (so resizing matters), saved as
    PNG (for Python) and PGM/PPM (for the C++ preprocessing)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("images")
    digits = load_digits()
    out = []
    for i, (size, mode) in enumerate([((24, 24), "L"), ((13, 17), "L"), ((30, 20), "RGB"),
                                      ((8, 8), "L")]):
        img = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8), "L")
        img = img.resize(size, Image.BICUBIC).convert(mode)
        png = folder / f"d{i}.png"
        pnm = folder / f"d{i}.{'pgm' if mode == 'L' else 'ppm'}"
        img.save(png)
        img.save(pnm)
        out.append((png, pnm))
    return out


def test_bundle_layout(arts, x86_bundle):
    assert sorted(p.name for p in x86_bundle.iterdir()) == ["bundle.json", "model.nb"]
    b = json.loads((x86_bundle / "bundle.json").read_text())
    assert b["format"] == "paddleopt-lite-bundle" and b["format_version"] == 1
    nb = (x86_bundle / "model.nb").read_bytes()
    model = b["model"]
    assert model["sha256"] == hashlib.sha256(nb).hexdigest() and model["size_bytes"] == len(nb)
    assert (model["target"], model["precision"], model["opt_version"]) == ("x86", "fp32",
                                                                            "2.13rc0")
    assert b["inputs"] == [{"name": "x", "shape": [-1, 1, 8, 8], "dtype": "float32"}]
    assert b["outputs"][0]["shape"] == [-1, 10] and b["labels"] == [str(i) for i in range(10)]
    pre = b["preprocess"]
    assert pre["size"] == [8, 8] and pre["color"] == "gray" and pre["layout"] == "NCHW"
    assert pre["mean"] == [0.3] and pre["std"] == [0.4] and pre["resize"] == "bilinear"
    assert pre["steps"] == ["decode", "to_gray", "resize", "scale", "normalize", "to_nchw"]
    src = b["source"]
    manifest = (arts["to_lite_x86"].path / "manifest.json").read_bytes()
    assert src["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert [e["stage"] for e in src["lineage"]] == ["train", "export", "to_lite_x86"]
    assert src["versions"]["paddlelite"] == "2.13rc0" and src["model"]["arch"] == "lenet"
    assert b["checks"]["parity_lite_vs_paddle_inference_max_abs_diff"] < 1e-4


def test_bundle_refusals(arts, x86_bundle, tmp_path):
    with pytest.raises(lite_bundle.BundleError, match="inference artifact"):
        lite_bundle.make_bundle(arts["export"].path, tmp_path / "a")
    with pytest.raises(lite_bundle.BundleError, match="--force"):
        lite_bundle.make_bundle(arts["to_lite_x86"].path, x86_bundle)
    broken = tmp_path / "broken"
    shutil.copytree(x86_bundle, broken)
    (broken / "model.nb").write_bytes(b"\x02\x00v2.13")  # Lite would abort on it
    with pytest.raises(lite_bundle.BundleError, match="sha256"):
        run_x86.Runner(broken)


def test_run_x86_matches_the_lite_backend(arts, x86_bundle, images):
    from paddleopt import api
    from paddleopt.data.preprocess import preprocess_images
    from paddleopt.deploy.predictor import load_predictor

    pngs = [str(png) for png, _ in images]
    runner = run_x86.Runner(x86_bundle)
    batch, _ = run_x86.load_inputs(pngs, runner.bundle)
    art = arts["to_lite_x86"]
    reference = preprocess_images(pngs, art.manifest.preprocess)
    assert np.array_equal(batch, reference)  # same preprocessing, bit for bit
    np.testing.assert_array_equal(runner.run(batch),
                                  load_predictor(art, "lite").run([reference])[0])

    proc = subprocess.run([sys.executable, "deploy_lite/run_x86.py", str(x86_bundle), *pngs,
                           "--top-k", "3", "--json"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)["results"]
    theirs = api.infer(art.path, pngs, backend="lite", top_k=3)
    for a, b in zip(ours, theirs, strict=True):
        assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
        np.testing.assert_allclose([p["score"] for p in a["predictions"]],
                                   [p["score"] for p in b["predictions"]], rtol=1e-6)


def test_run_x86_refuses_an_arm_bundle(arts, images, tmp_path):
    made = subprocess.run([sys.executable, "deploy_lite/bundle.py",
                           str(arts["to_lite_arm"].path), str(tmp_path / "arm")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and "run it on the device" in made.stdout, made.stderr
    assert json.loads((tmp_path / "arm" / "bundle.json").read_text())["model"]["target"] == "arm"
    proc = subprocess.run([sys.executable, "deploy_lite/run_x86.py", str(tmp_path / "arm"),
                           str(images[0][0])], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "returns garbage" in proc.stderr


@pytest.fixture(scope="module")
def preprocess_check(tmp_path_factory):
    """Build the app's host tool with its own CMakeLists (no PADDLE_LITE_DIR: the app target
    is skipped, which is also what this checks)."""
    if not (shutil.which("cmake") and shutil.which("c++")):
        pytest.skip("cmake / a C++ compiler are not installed")
    build = tmp_path_factory.mktemp("app_build")
    for cmd in (["cmake", "-S", str(APP), "-B", str(build)],
                ["cmake", "--build", str(build), "--target", "preprocess_check"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "PADDLE_LITE_DIR not set" in subprocess.run(
        ["cmake", "-S", str(APP), "-B", str(build)], capture_output=True, text=True).stdout
    return build / "preprocess_check"


@pytest.mark.parametrize("resize", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("channels", [1, 3])
def test_cpp_preprocessing_is_bit_exact(preprocess_check, x86_bundle, images, tmp_path,
                                        resize, channels):
    from paddleopt.data.preprocess import preprocess_images

    mean, std = ([0.3], [0.4]) if channels == 1 else ([0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
    spec = {"type": "image", "size": [11, 9], "channels": channels, "mean": mean, "std": std,
            "resize": resize, "invert": channels == 3}
    variant = tmp_path / "b"
    shutil.copytree(x86_bundle, variant)
    b = json.loads((variant / "bundle.json").read_text())
    b["preprocess"] = lite_bundle.preprocess_steps(spec)
    (variant / "bundle.json").write_text(json.dumps(b))
    out = tmp_path / "t.bin"
    proc = subprocess.run([str(preprocess_check), str(variant), str(out),
                           *[str(pnm) for _, pnm in images]], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = np.fromfile(out, dtype=np.float32).reshape(len(images), channels, 11, 9)
    want = preprocess_images([str(png) for png, _ in images], spec)
    assert np.array_equal(got, want), float(np.abs(got - want).max())


def test_cpp_app_compiles_against_the_lite_api_it_uses():
    """main.cc against a stub paddle_api.h holding only the declarations it uses (spelled as in
    Paddle Lite 2.13). Compiles, never links: the ARM library is not available here."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    proc = subprocess.run([compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror",
                           "-fsyntax-only", "-I", str(REPO / "tests" / "deploy_lite" / "stub"),
                           str(APP / "main.cc")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
