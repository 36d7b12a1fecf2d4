"""User mistakes end with a one-paragraph error, exit code 2 and no traceback."""
from __future__ import annotations

import textwrap

import pytest
import yaml

from conftest import REPO, tiny_config


def assert_user_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error:" in proc.stderr and "fix:" in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def write_config(path, config) -> str:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return str(path)


def test_typo_in_a_config_key(cli, tmp_path):
    cfg = tiny_config(tmp_path / "w")
    cfg["stages"]["train"]["epoch"] = 1
    proc = cli("run", "-c", write_config(tmp_path / "c.yaml", cfg))
    assert_user_error(proc, "stages.train.epoch", "did you mean 'stages.train.epochs'")


def test_wrong_type_from_an_override(cli):
    proc = cli("plan", "-c", "configs/quickstart.yaml", "-o", "data.batch_size=lots")
    assert_user_error(proc, "data.batch_size", "expected int")


def test_missing_config_file(cli):
    proc = cli("run", "-c", "configs/does_not_exist.yaml")
    assert_user_error(proc, "does_not_exist.yaml", "does not exist")


def test_missing_input_image(cli, tiny_inference):
    proc = cli("infer", str(tiny_inference.path), "no_such_image.png")
    assert_user_error(proc, "no_such_image.png")


def test_missing_extra_fails_at_plan_time(cli, tmp_path):
    """Hide onnxruntime/paddle2onnx from the child interpreter, as if the extra was never
    installed; the plan must stop before training with the exact pip line."""
    hider = tmp_path / "hide"
    hider.mkdir()
    (hider / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _Hide:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('paddle2onnx', 'onnxruntime'):
                    raise ModuleNotFoundError(name)
                return None
        sys.meta_path.insert(0, _Hide())
    """))
    cfg = tiny_config(tmp_path / "w")
    cfg["stages"]["to_onnx"] = {}
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(hider))
    proc = subprocess.run([sys.executable, "-m", "paddleopt", "run", "-c",
                           write_config(tmp_path / "c.yaml", cfg)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert_user_error(proc, "'onnx' extra", 'pip install -c constraints.txt -e ".[onnx]"')
    assert not (tmp_path / "w" / "01_train").exists()  # nothing ran


def test_corrupt_pdiparams(cli, tiny_inference, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_inference.path, broken)
    params = broken / "model.pdiparams"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 3])
    (broken / "manifest.json").unlink()  # as a user's bare model folder: no digest to compare
    proc = cli("bench", str(broken))
    assert_user_error(proc, "model.pdiparams")


def test_corrupt_pdiparams_in_artifact_is_caught_by_digest(cli, tiny_inference, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_inference.path, broken)
    params = broken / "model.pdiparams"
    params.write_bytes(b"\0" * params.stat().st_size)
    proc = cli("bench", str(broken))
    assert_user_error(proc, "model.pdiparams", "sha256")


@pytest.mark.parametrize("args, needle", [
    (("bench",), "no ARTIFACT"),
    (("report", "/nonexistent/work"), "report.json"),
])
def test_other_mistakes(cli, args, needle):
    assert_user_error(cli(*args), needle)


@pytest.mark.parametrize("override, needles", [
    ("evaluate.targets.1.options.thread=2",
     ("evaluate.targets[1].options.thread", "did you mean 'evaluate.targets[1].options.threads'")),
    ("evaluate.targets.2.options.threads=-1", ("threads", ">= 0")),
    ("evaluate.targets.0.backend=onnxrt", ("evaluate.targets[0].backend", "'onnxruntime'")),
])
def test_target_options_are_checked_at_plan_time(cli, override, needles):
    assert_user_error(cli("plan", "-c", "configs/quickstart.yaml", "-o", override), *needles)


def test_bad_target_option_stops_run_before_training(cli, tmp_path):
    cfg = tiny_config(tmp_path / "w")
    cfg["evaluate"]["targets"][1]["options"] = {"onednn": True, "ir_optimize": False}
    proc = cli("run", "-c", write_config(tmp_path / "c.yaml", cfg))
    assert_user_error(proc, "evaluate.targets[1].options.ir_optimize",
                      "did you mean 'evaluate.targets[1].options.ir_optim'")
    assert not (tmp_path / "w").exists()  # planning failed: nothing trained, nothing written


def test_target_options_parse_without_paddle():
    """plan() checks every backend's Options without importing paddle or a backend package."""
    import subprocess
    import sys

    code = ("import sys; from paddleopt.deploy.backends.table import BACKENDS; "
            "from paddleopt.deploy.predictor import parse_options\n"
            "for name in BACKENDS: parse_options(name, {})\n"
            "heavy = [m for m in ('paddle', 'onnxruntime', 'paddlelite', 'paddleslim') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
