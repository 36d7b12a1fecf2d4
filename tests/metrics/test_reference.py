"""Label-free scoring: fp32 reference outputs, the built-in agreement or a user metric."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.metrics.ocr import ctc_agreement
from paddleopt.metrics.reference import Reference, load_metric
from paddleopt.oneshot_calib import calibration_spec
from paddleopt.utils.errors import UserError


def _ctc(ids: list[list[int]], classes: int = 5) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[np.asarray(ids)]


def test_user_metric_replaces_the_builtin_score() -> None:
    ref = _ctc([[1, 1, 0, 2], [3, 0, 0, 0]])
    got = _ctc([[1, 0, 1, 2], [3, 3, 0, 0]])  # "1 1 2" vs "1 2": differs; "3" == "3"
    reference = Reference([ref], metric="paddleopt.metrics.ocr:ctc_agreement",
                          inputs_from="calib.npz [16:18]")
    scored = reference.score([got])
    assert scored["metric"] == "paddleopt.metrics.ocr:ctc_agreement"
    assert scored["score"] == pytest.approx(0.5)
    assert scored["builtin"]["metric"] == "top1_agreement"
    assert scored["builtin"]["score"] == pytest.approx(5 / 8)
    assert scored["samples"] == 2 and scored["inputs"] == "calib.npz [16:18]"
    assert ctc_agreement([ref], [ref]) == 1.0


def test_bad_metric_names_are_user_errors() -> None:
    with pytest.raises(UserError, match="package.module:function"):
        load_metric("paddleopt.metrics.ocr")
    with pytest.raises(UserError, match="no function 'nope'"):
        load_metric("paddleopt.metrics.ocr:nope")
    with pytest.raises(UserError, match="cannot import"):
        load_metric("no_such_pkg_xyz.mod:fn")


def test_calibration_split_leaves_held_out_samples(tmp_path) -> None:
    path = tmp_path / "c.npz"
    np.savez(path, x=np.zeros((48, 3, 8, 8), np.float32))
    cal, heldout = calibration_spec(path)
    assert cal == {"source": "npz", "path": str(path), "count": 24, "batch_size": 12}
    assert heldout == 24
    with pytest.raises(UserError, match="leaves no held-out"):
        calibration_spec(path, count=48)
    with pytest.raises(UserError, match="neither an image folder nor an .npz"):
        calibration_spec(tmp_path / "missing.npz")
