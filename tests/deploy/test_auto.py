"""paddleopt deploy: real candidates (Paddle Inference, OpenVINO, ONNX Runtime, Lite x86) of the
tiny pipeline measured, the fastest within the budget written to deployment.json, which infer
and serve then use."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from paddleopt import api
from paddleopt.deploy import auto
from paddleopt.utils.errors import UserError

QUICK = dict(threads=[1], rounds=1, seconds=0.2, eval_samples=64)


@pytest.fixture(scope="module")
def work(tiny_deploy_run, tmp_path_factory):
    """A copy of the tiny deploy work dir (deployment.json must not leak into the shared
    one): export, to_onnx, to_lite_x86 (and the ARM .nb, which is no candidate here)."""
    root = tmp_path_factory.mktemp("auto")
    for key in ("export", "to_onnx", "to_lite_arm", "to_lite_x86"):
        src = tiny_deploy_run.artifacts[key].path
        shutil.copytree(src, root / src.name)
    return root


@pytest.fixture(scope="module")
def deployed(work):
    return api.deploy(work / "02_export", **QUICK)


def test_candidates_side_by_side_and_the_fastest_within_budget_wins(deployed, work):
    names = {c["name"] for c in deployed["candidates"]}
    assert {"pi-t1", "ort-t1", "lite-x86"} <= names
    from paddleopt.deploy.backends import openvino

    if openvino.is_available():
        assert "ov-t1" in names
    timed = [c for c in deployed["candidates"] if c["p50_ms"] is not None]
    assert len(timed) == len(deployed["candidates"])  # every candidate ran
    ok = [c for c in timed if c["within_budget"]]
    winner = next(c for c in timed if c["name"] == deployed["winner"])
    assert winner["within_budget"] and winner["p50_ms"] == min(c["p50_ms"] for c in ok)
    assert all(c["agreement"] >= 0.99 for c in ok)
    assert deployed["evaluation"]["source"].startswith("evaluation data")
    assert deployed["winner"] in deployed["why"] and "p50" in deployed["why"]
    check = deployed["recheck"]
    assert check["winner_p50_ms"] > 0 and check["ratio"] >= 1.0 and "passed" in check
    data = json.loads((work / "deployment.json").read_text())
    assert data["backend"] == winner["backend"] and data["options"] == winner["options"]
    assert (work / data["artifact"]).resolve() == (work / winner["artifact"]).resolve() or \
        (work / data["artifact"]).name == winner["artifact"].rsplit("/", 1)[-1]


def test_infer_and_serve_use_the_deployment_by_default(deployed, work, tmp_path):
    path, backend, options, used = auto.resolve(work / "02_export", None, None)
    assert used == work / "deployment.json"
    assert backend == deployed["backend"] and options == deployed["options"]
    # an explicit choice wins over the file
    path, backend, _, used = auto.resolve(work / "02_export", "paddle_inference", None)
    assert used is None and backend == "paddle_inference"
    # the file itself works as ARTIFACT
    path, backend, _, used = auto.resolve(work / "deployment.json", None, None)
    assert used is not None and backend == deployed["backend"] and path.is_dir()
    from paddleopt.deploy.accuracy import eval_data

    x = eval_data(api.open_artifact(work / "02_export"), 2)[0][0]
    np.save(tmp_path / "x.npy", x)
    via_file = api.infer(work / "02_export", [str(tmp_path / "x.npy")])
    plain = api.infer(work / "02_export", [str(tmp_path / "x.npy")], backend="paddle_inference")
    assert [r["predictions"][0]["class_id"] for r in via_file] == \
        [r["predictions"][0]["class_id"] for r in plain]


def test_candidates_with_two_threads_include_the_openmp_and_streams_switches(work):
    from paddleopt.artifact import Artifact

    export = Artifact.open(work / "02_export")
    names = {c.name: c for c in auto.candidates(
        export, auto.DeployRequest(threads=[1, 2], workload="throughput"))}
    assert names["pi-bt0-t2"].options == {"onednn": True, "omp_blocktime_ms": 0, "threads": 2}
    assert "pi-bt0-t1" not in names  # one thread: nothing waits
    from paddleopt.deploy.backends import openvino

    if openvino.is_available():
        assert names["ov-2streams-t2"].options["streams"] == 2
    with pytest.raises(UserError, match="cannot be measured"):
        auto.candidates(export, auto.DeployRequest(target="gpu"))  # type: ignore[arg-type]


def test_an_unrelated_model_ignores_the_deployment(work, tmp_path):
    from tiny_models import make_cnn, save_inference

    other = save_inference(make_cnn(seed=3), work / "other_model")
    try:
        assert auto.resolve(other, None, None)[3] is None
    finally:
        shutil.rmtree(other)


class Shifted:
    """A real predictor whose class scores are rotated by one: what a broken deployment
    (e.g. a bad INT8 calibration) looks like to the budget check."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor

    def run(self, feeds):
        return [np.roll(self.predictor.run(feeds)[0], 1, axis=-1)]


def test_over_budget_candidate_is_measured_but_not_chosen(work):
    from paddleopt.artifact import Artifact
    from paddleopt.deploy.predictor import load_predictor

    export = Artifact.open(work / "02_export")
    request = auto.DeployRequest(**QUICK)
    cands = [auto.Candidate("pi-t1", export, "paddle_inference", {"threads": 1}, "fp32"),
             auto.Candidate("broken", export, "paddle_inference", {"threads": 1}, "fp32")]
    real = load_predictor(export, "paddle_inference", {"threads": 1})
    auto.check_accuracy(cands, export, request, {"pi-t1": real, "broken": Shifted(real)})
    assert cands[0].within_budget and cands[0].agreement == 1.0
    assert not cands[1].within_budget and "top1_agreement" in cands[1].budget_note
    assert "accuracy" in cands[1].budget_note  # labelled digits: the accuracy drop too


def test_cli_deploy_and_errors(cli, work, tmp_path):
    out = tmp_path / "d.json"
    proc = cli("deploy", str(work / "02_export"), "--threads", "1", "--rounds", "1",
               "--seconds", "0.2", "--eval-samples", "32", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "**(winner)**" in proc.stdout and "re-measured" in proc.stdout
    assert json.loads(out.read_text())["kind"] == "paddleopt-deployment"
    proc = cli("deploy", str(work / "02_export"), "--min-agreement", "1.5", "--out",
               str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "min_agreement" in proc.stderr
    bad = tmp_path / "deployment.json"
    bad.write_text("{}")
    with pytest.raises(UserError, match="not a deployment"):
        auto.resolve(bad, None, None)


class Sleeper:
    """A predictor that takes ``ms`` per call, times the machine's load: bursts of 3x
    slowdown 40 ms out of every 100 ms (other processes taking the cores). Real predictors
    on this shared machine cannot be made to meet a burst on cue; the re-measurement's logic
    is what is tested here."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def run(self, feeds):
        import time

        burst = (time.perf_counter() * 1e3) % 100 < 40
        time.sleep(self.ms * (3 if burst else 1) / 1e3)
        return feeds


def test_recheck_settles_the_pick_on_a_noisy_machine():
    """The first timing put the slower candidate first (a burst hit the faster one): the
    re-measurement's alternating rounds of best-of-N undo it and say so; with the real order
    it passes without changing the pick."""
    feeds = [np.zeros((1, 1), np.float32)]
    loaded = {"fast": Sleeper(2.0), "slow": Sleeper(2.8)}
    request = auto.DeployRequest(rounds=3, seconds=0.1)

    def cands(first: str, second: str, p50s: tuple[float, float]):
        return [auto.Candidate(name, None, "x", {}, "fp32", within_budget=True, p50_ms=p50)
                for name, p50 in zip((first, second), p50s)]

    winner, checked = auto.recheck(cands("slow", "fast", (2.9, 6.0)), loaded, feeds, request)
    assert winner.name == "fast" and checked["pick_changed"] and checked["passed"]
    assert checked["first_timing_pick"] == "slow" and checked["rounds"] >= 3
    assert checked["best"] == "fast" and 2.0 <= checked["winner_p50_ms"] < 2.6
    assert winner.p50_ms == pytest.approx(checked["winner_p50_ms"])
    winner, checked = auto.recheck(cands("fast", "slow", (2.1, 3.0)), loaded, feeds, request)
    assert winner.name == "fast" and not checked["pick_changed"] and checked["ratio"] == 1.0
