"""`infer` on images unlike the training data: a warning for an inverted digit, and
`--invert` (or api.infer(preprocess=...)) giving the class the model gives the original."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cli
from paddleopt import api
from paddleopt.data.samples import write_samples
from paddleopt.utils.errors import UserError


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """digits_7.png (white on black, as the training data) and digits_7_inverted.png."""
    folder = tmp_path_factory.mktemp("samples")
    paths = write_samples("digits", folder, digits=(7,), scale=4)
    return {p.stem: p for p in paths}


def test_training_brightness_is_recorded(tiny_inference):
    stats = tiny_inference.manifest.dataset["brightness"]
    assert 0.2 < stats["mean"] < 0.4 and 0 < stats["std"] < 0.1 and stats["samples"] > 1000


def test_inverted_digit_warns_and_invert_gives_the_right_class(tiny_inference, samples):
    art = str(tiny_inference.path)
    plain = api.infer(art, [str(samples["digits_7"])])[0]
    assert plain["predictions"][0]["label"] == "7"
    assert plain["warnings"] == []

    inverted = api.infer(art, [str(samples["digits_7_inverted"])])[0]
    assert len(inverted["warnings"]) == 1
    assert "looks inverted" in inverted["warnings"][0]
    assert "--invert" in inverted["warnings"][0]

    fixed = api.infer(art, [str(samples["digits_7_inverted"])], preprocess={"invert": True})[0]
    assert fixed["warnings"] == []
    assert fixed["predictions"][0]["label"] == "7"
    assert fixed["predictions"][0]["score"] == pytest.approx(
        plain["predictions"][0]["score"], abs=1e-4)


def test_cli_invert_flag_and_warning(tiny_inference, samples):
    art, png = str(tiny_inference.path), str(samples["digits_7_inverted"])
    proc = run_cli("infer", art, png)
    assert proc.returncode == 0, proc.stderr
    assert "looks inverted" in proc.stderr and "--invert" in proc.stderr
    proc = run_cli("infer", art, png, "--invert")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(")") and f"{png}: 7 (" in proc.stdout
    assert "unlike the training images" not in proc.stderr


def test_size_mean_std_overrides_and_npy_refusal(tiny_inference, samples, tmp_path):
    art = str(tiny_inference.path)
    # the recorded mean/std given explicitly change nothing
    pre = tiny_inference.manifest.preprocess
    same = api.infer(art, [str(samples["digits_7"])],
                     preprocess={"mean": pre["mean"], "std": pre["std"], "size": [8, 8]})[0]
    plain = api.infer(art, [str(samples["digits_7"])])[0]
    assert same["predictions"] == plain["predictions"]
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(UserError, match="fed as they are"):
        api.infer(art, [str(npy)], preprocess={"invert": True})
    proc = run_cli("infer", art, str(samples["digits_7"]), "--size", "8by8")
    assert proc.returncode == 2 and "HEIGHTxWIDTH" in proc.stderr
