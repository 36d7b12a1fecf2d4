"""ptq stage: INT8 models from pipeline data, an .npz or an image folder, for our models and
foreign ones (several inputs, dynamic shapes); the accuracy-aware search records what it tried
and why; bad inputs fail early with the fix."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import tiny_config
from paddleopt import api
from paddleopt.stages.pipeline import plan
from paddleopt.utils.errors import ConfigError, StageError, UserError
from paddleopt.utils.imports import import_paddle
from stage_helpers import QUICK_FT, run_stage
from paddleopt.utils.jit import save_layer

paddle = import_paddle()

QUICK_LATENCY = {"batch_size": 8, "iters": 5, "warmup": 1, "max_seconds": 0.3, "rounds": 1}
# INT8 vs fp32 outputs of the tiny digits LeNet (|logits| up to ~10; measured with abs_max:
# max diff ~12% of the largest |logit|, mean ~3%, top-1 agreement ~97%).
MAX_REL, MEAN_REL, AGREE = 0.25, 0.06, 0.9


@pytest.fixture(scope="module")
def ptq_art(tiny_inference, tmp_path_factory):
    return run_stage("ptq", {"algo": "abs_max", "calibration": {"count": 64, "batch_size": 32},
                             "evaluation": {"count": 150}, "latency": QUICK_LATENCY},
                     tiny_inference, tmp_path_factory.mktemp("ptq"))


def test_int8_artifact_runs_int8_kernels_close_to_fp32(ptq_art):
    m = ptq_art.manifest
    assert m.kind == "inference" and m.precision == "int8"
    assert m.quantization["method"] == "ptq" and m.quantization["algo"] == "abs_max"
    assert m.quantization["quantized_compute_ops"] == 4
    assert m.quantization["calibration"] == {"source": "pipeline", "batches": 2, "samples": 64}
    int8 = m.checks["int8"]
    assert int8["int8_convs"] == 2 and int8["fp32_convs"] == 0 and int8["int8_kernels"] >= 4
    close = m.checks["int8_vs_fp32"]
    assert close["max_rel_diff"] < MAX_REL and close["mean_rel_diff"] < MEAN_REL
    assert close["top1_agreement"] >= AGREE
    assert abs(m.metrics["accuracy_drop"]) <= 0.05 and m.metrics["eval_samples"] == 150
    assert m.metrics["chosen"] == "abs_max" and m.metrics["speedup_vs_fp32"] > 0
    assert {"candidates", "plot"} <= set(m.files)
    assert ptq_art.file("plot").read_bytes()[:4] == b"\x89PNG"
    assert not (ptq_art.path / "candidates").exists()  # only the chosen model is kept


class TwoInputs(paddle.nn.Layer):
    """An image and a variable-length feature sequence (dy2static needs module-level names)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(1, 8, 3, padding=1)
        self.seq = paddle.nn.Linear(6, 8)
        self.head = paddle.nn.Linear(16, 4)

    def forward(self, image, feats):  # noqa: ANN001, ANN201
        a = paddle.flatten(paddle.nn.functional.adaptive_avg_pool2d(
            paddle.nn.functional.relu(self.conv(image)), 1), 1)
        b = paddle.nn.functional.relu(self.seq(feats)).mean(axis=1)
        return self.head(paddle.concat([a, b], axis=1))


def _two_input_model(folder):
    paddle.seed(3)
    model = TwoInputs()
    model.eval()
    save_layer(model, str(folder / "model"), input_spec=[
        paddle.static.InputSpec([None, 1, 8, 8], "float32", "image"),
        paddle.static.InputSpec([None, None, 6], "float32", "feats")])
    return folder


def test_foreign_two_input_model_from_npz_as_first_stage(tmp_path):
    model_dir = _two_input_model(tmp_path / "foreign")
    rng = np.random.default_rng(0)
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=rng.random((32, 1, 8, 8)), feats=rng.random((32, 5, 6)))
    cfg = tiny_config(tmp_path / "work")
    cfg["stages"] = {"ptq": {"model_dir": str(model_dir), "algo": "avg",
                             "calibration": {"source": "npz", "path": str(calib),
                                             "batch_size": 8},
                             "evaluation": {"source": "none"}, "latency": QUICK_LATENCY}}
    cfg["evaluate"]["targets"] = []
    art = api.run(cfg).artifacts["ptq"]
    m = art.manifest
    assert [i.name for i in m.io.inputs] == ["image", "feats"]
    assert m.io.inputs[1].shape == [-1, -1, 6]
    assert m.quantization["calibration"]["batches"] == 4
    assert m.checks["int8"]["int8_convs"] == 1
    assert "accuracy" not in m.metrics and m.metrics["latency"]["int8"]["p50"] > 0
    from paddleopt.deploy.predictor import load_predictor

    out = load_predictor(art, "paddle_inference", {"threads": 1}).run(
        [rng.random((3, 1, 8, 8), "float32"), rng.random((3, 11, 6), "float32")])[0]
    assert out.shape == (3, 4)


def test_image_folder_with_declared_preprocess(tiny_inference, tmp_path):
    from PIL import Image

    from paddleopt.data.datasets import load_digits

    foreign = tmp_path / "model"
    foreign.mkdir()
    for name in ("model.pdmodel", "model.pdiparams"):  # a bare folder: no manifest
        shutil.copy2(tiny_inference.path / name, foreign / name)
    images = tmp_path / "images" / "nested"
    images.mkdir(parents=True)
    for i, img in enumerate(load_digits().train.images[:20]):
        Image.fromarray((img[0] * 255).astype("uint8")).save(images / f"{i}.png")
    pre = {"size": [8, 8], "channels": 1, "mean": [0.3], "std": [0.4]}
    art = run_stage("ptq", {"model_dir": str(foreign), "algo": "hist",
                            "calibration": {"source": "image_folder",
                                            "path": str(tmp_path / "images"), "count": 16,
                                            "batch_size": 8, "preprocess": pre},
                            "verify_int8": False, "latency": QUICK_LATENCY},
                    None, tmp_path / "work")
    assert art.manifest.quantization["calibration"]["samples"] == 16
    assert art.manifest.preprocess["mean"] == [0.3]  # infer can now read images for it
    assert art.manifest.metrics["accuracy"] > 0.5  # pipeline data (digits) still scores it


@pytest.mark.slow  # ~15 s: real PTQ x2, a sensitivity analysis and QAT (fast version: below)
def test_accuracy_aware_search_records_every_candidate(tiny_checkpoint, tiny_inference,
                                                       tmp_path):
    art = run_stage("ptq", {
        "max_accuracy_drop": 0.5, "search": "all", "calibration": {"count": 64},
        "evaluation": {"count": 100}, "sensitivity_samples": 60, "latency": QUICK_LATENCY,
        "candidates": [{"algo": "abs_max"}, {"algo": "avg", "skip_sensitive": 1},
                       {"qat": True}], "qat": {"finetune": QUICK_FT}},
        tiny_inference, tmp_path, artifacts={"train": tiny_checkpoint, "export": tiny_inference})
    cands = art.manifest.metrics["candidates"]
    assert [c["name"] for c in cands] == ["abs_max", "avg-skip1", "qat"]
    assert all(c["status"] in ("kept", "fits") for c in cands)  # a 50-point budget: all fit
    assert sum(c["status"] == "kept" for c in cands) == 1
    chosen = next(c for c in cands if c["status"] == "kept")
    assert chosen["name"] == art.manifest.metrics["chosen"] and "chosen" in chosen["reason"]
    skipped = cands[1]["skipped_layers"]
    assert len(skipped) == 1 and skipped[0] in cands[1]["skip_tensors"]
    assert cands[1]["unquantized_compute_ops"] == 1
    assert cands[2]["checkpoint"] == str(tiny_checkpoint.path)
    record = json.loads(art.file("candidates").read_text())
    assert len(record["sensitivity"]["avg"]) == 2  # both convs (the skippable layers) measured
    assert art.file("plot").stat().st_size > 1000


class _Fake:
    """Replaces _Run.measure: the fp32 baseline, then one result per candidate."""

    def __init__(self, accuracies: list[float], speedups: list[float]) -> None:
        self.acc, self.speed = list(accuracies), list(speedups)

    def __call__(self, run, art, data, paired=True):  # noqa: ANN001, ANN204
        lat = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
        if not paired:
            return {"accuracy": 0.9, "latency_ms": lat, "throughput_per_s": 8.0}
        speed = self.speed.pop(0)
        return {"accuracy": self.acc.pop(0), "latency_ms": {k: 1 / speed for k in lat},
                "throughput_per_s": 8.0 * speed, "fp32_latency_ms": lat,
                "speedup_vs_fp32": speed}


def _search(monkeypatch, tiny_inference, tmp_path, fake, **cfg):
    from paddleopt.stages import ptq

    monkeypatch.setattr(ptq._Run, "measure",
                        lambda run, art, data, paired=True: fake(run, art, data, paired))
    base = {"max_accuracy_drop": 0.01, "calibration": {"count": 32}, "verify_int8": False,
            "evaluation": {"count": 50},
            "candidates": [{"algo": "abs_max"}, {"algo": "avg"}, {"algo": "mse"}]}
    return run_stage("ptq", {**base, **cfg}, tiny_inference, tmp_path)


def test_first_fit_stops_at_the_first_candidate_within_budget(monkeypatch, tiny_inference,
                                                              tmp_path):
    art = _search(monkeypatch, tiny_inference, tmp_path, _Fake([0.80, 0.895], [3.0, 2.0]))
    cands = art.manifest.metrics["candidates"]
    assert [c["status"] for c in cands] == ["rejected", "kept", "not_tried"]
    assert "drop 10.00 points > budget 1.00 points" in cands[0]["reason"]
    assert "(first that fits)" in cands[1]["reason"] and art.manifest.metrics["chosen"] == "avg"


def test_search_all_keeps_the_fastest_within_budget(monkeypatch, tiny_inference, tmp_path):
    art = _search(monkeypatch, tiny_inference, tmp_path,
                  _Fake([0.899, 0.80, 0.895], [2.0, 5.0, 3.0]), search="all")
    cands = art.manifest.metrics["candidates"]
    assert [c["status"] for c in cands] == ["fits", "rejected", "kept"]
    assert "not chosen: 'mse' is faster" in cands[0]["reason"]
    assert art.manifest.metrics["chosen"] == "mse"


def test_no_candidate_fits_fails_with_what_was_tried(monkeypatch, tiny_inference, tmp_path):
    with pytest.raises(StageError, match=r"no PTQ candidate fits max_accuracy_drop 1.00 points "
                                         r"\(abs_max: drop 20.00 points > budget 1.00 "
                                         r"points; avg: drop"):
        _search(monkeypatch, tiny_inference, tmp_path,
                _Fake([0.7, 0.7, 0.7], [1.0, 1.0, 1.0]))
    record = json.loads((tmp_path / "ptq" / "candidates.json").read_text())
    assert [c["status"] for c in record["candidates"]] == ["rejected"] * 3


def test_qat_candidate_skipped_without_checkpoint(monkeypatch, tiny_inference, tmp_path):
    art = _search(monkeypatch, tiny_inference, tmp_path, _Fake([0.7, 0.9], [1.0, 1.0]),
                  candidates=[{"algo": "abs_max"}, {"qat": True}, {"algo": "avg"}])
    cands = art.manifest.metrics["candidates"]
    assert cands[1]["status"] == "skipped" and "set qat.checkpoint" in cands[1]["reason"]
    assert art.manifest.metrics["chosen"] == "avg"


def test_unknown_skip_tensor_lists_the_quantizable_ops(tiny_inference, tmp_path):
    with pytest.raises(UserError, match="are not tensors of 'model.pdmodel'") as err:
        run_stage("ptq", {"skip_tensors": ["no_such_tensor"], "max_accuracy_drop": 0.5,
                          "calibration": {"count": 32}, "candidates": [{"algo": "abs_max"}],
                          "latency": QUICK_LATENCY}, tiny_inference, tmp_path)
    assert "conv2d(" in err.value.fix  # the fix names the quantizable ops and their inputs


@pytest.mark.parametrize("stage, match", [
    ({"algo": "percentile"}, "'percentile' is not allowed"),
    ({"max_accuracy_drop": 1.5}, r"max_accuracy_drop must be in \[0, 1\)"),
    ({"max_accuracy_drop": 0.01, "evaluation": {"source": "none"}},
     "max_accuracy_drop needs evaluation data"),
    ({"candidates": [{"algo": "kl"}]}, "only tried under a max_accuracy_drop budget"),
    ({"max_accuracy_drop": 0.01, "candidates": [{"qat": True, "algo": "kl"}]},
     "a qat/qat_distill candidate takes no algo/skip settings"),
    ({"calibration": {"source": "npz"}}, "needs calibration.path"),
    ({"calibration": {"source": "npz", "path": "/no/calib.npz"}}, "does not exist"),
    ({"calibration": {"source": "image_folder", "path": "/no/images"}}, "is not a folder"),
    ({"calibration": {"count": 0}}, "must be >= 1"),
])
def test_bad_config_fails_at_plan(tmp_path, stage, match):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "export": {}, "ptq": stage}
    cfg["evaluate"]["targets"] = []
    with pytest.raises(ConfigError, match=match):
        plan(cfg)


def test_first_stage_needs_model_dir(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"ptq": {}}
    cfg["evaluate"]["targets"] = []
    with pytest.raises(ConfigError, match="ptq is the first stage but has no model_dir"):
        plan(cfg)


def test_foreign_model_needs_declared_preprocess_for_images(tiny_inference, tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"ptq": {"model_dir": str(tiny_inference.path),
                             "calibration": {"source": "image_folder", "path": str(tmp_path)}}}
    cfg["evaluate"]["targets"] = []
    with pytest.raises(ConfigError, match="declare it, e.g. preprocess"):
        plan(cfg)


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.zeros((4, 3, 8, 8), "float32")},
     r"expected shape \[-1, 1, 8, 8\] float32, got shape \[4, 3, 8, 8\]"),
    ({"x": np.zeros((4, 1, 8, 8), "uint8")}, "expected dtype float32, got uint8"),
    ({"image": np.zeros((4, 1, 8, 8), "float32")}, r"the model expects inputs \['x'\]"),
])
def test_wrong_calibration_npz_fails_at_plan(tiny_inference, tmp_path, arrays, match):
    path = tmp_path / "calib.npz"
    np.savez(path, **arrays)
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"ptq": {"model_dir": str(tiny_inference.path),
                             "calibration": {"source": "npz", "path": str(path)}}}
    cfg["evaluate"]["targets"] = []
    with pytest.raises(UserError, match=match):
        plan(cfg)
    assert not (tmp_path / "01_ptq").exists()


# -- oneDNN INT8 op list (onednn_int8_ops) -------------------------------------------------
@pytest.fixture(scope="module")
def ptq_fc_art(tiny_inference, tmp_path_factory):
    return run_stage("ptq", {"algo": "abs_max", "onednn_int8_ops": ["fc"],
                             "calibration": {"count": 64, "batch_size": 32},
                             "evaluation": {"count": 150}, "latency": QUICK_LATENCY},
                     tiny_inference, tmp_path_factory.mktemp("ptq_fc"))


def test_onednn_int8_ops_recorded_verified_and_applied(ptq_fc_art, ptq_art):
    from paddleopt.deploy.predictor import load_predictor

    m = ptq_fc_art.manifest
    assert m.quantization["onednn_int8_ops"] == ["fc"]
    assert ptq_art.manifest.quantization["onednn_int8_ops"] is None  # default: every op
    int8 = m.checks["int8"]  # the check ran as deployed: fc -> INT8 inner_product, convs fp32
    assert int8["int8_op_list"] == ["fc"] and int8["int8_convs"] == 0
    assert int8["fp32_convs"] == 2 and int8["int8_kernels"] >= 1
    assert any(k.startswith("inner_product:") and k.endswith(("s8", "u8"))
               for k in int8["kernels"])
    close = m.checks["int8_vs_fp32"]  # measured with the list: only the linear layers INT8
    assert close["max_rel_diff"] < MAX_REL and close["top1_agreement"] >= AGREE
    assert abs(m.metrics["accuracy_drop"]) <= 0.05
    fc_only = load_predictor(ptq_fc_art, "paddle_inference", {"threads": 1})
    assert fc_only.describe()["onednn_int8_ops"] == ["fc"]
    every = load_predictor(ptq_fc_art, "paddle_inference",
                           {"threads": 1, "onednn_int8_ops": "all"})
    assert every.describe()["onednn_int8_ops"] == ["all"]
    x = np.random.default_rng(0).random((16, *m.io.inputs[0].shape[1:])).astype("float32")
    a, b = fc_only.run([x])[0], every.run([x])[0]
    assert not np.allclose(a, b)  # the override really changes what runs INT8


class TinyAttention(paddle.nn.Layer):
    """Self-attention over [batch, seq, 8] features: q.k^T and a.v multiply activations."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = (paddle.nn.Linear(8, 8) for _ in range(3))
        self.head = paddle.nn.Linear(8, 3)

    def forward(self, x):  # noqa: ANN001, ANN201
        scores = paddle.matmul(self.q(x), self.k(x), transpose_y=True) / 8 ** 0.5
        ctx = paddle.matmul(paddle.nn.functional.softmax(scores, axis=-1), self.v(x))
        return self.head(ctx.mean(axis=1))


@pytest.fixture(scope="module")
def attention(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attention")
    paddle.seed(5)
    model = TinyAttention()
    model.eval()
    save_layer(model, str(folder / "model"),
               input_spec=[paddle.static.InputSpec([None, 6, 8], "float32", "x")])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((96, 6, 8)).astype("float32")
    with paddle.no_grad():
        labels = model(paddle.to_tensor(x)).numpy().argmax(-1)
    np.savez(folder / "data.npz", x=x, labels=labels)  # evaluation: inputs + labels
    np.savez(folder / "calib.npz", x=x)  # calibration: inputs only
    return folder


def test_attention_model_gets_an_fc_only_candidate(attention, tiny_inference, tmp_path):
    from paddleopt.artifact import Artifact
    from paddleopt.stages.ptq import PTQConfig, PTQRun

    cfg = PTQConfig(max_accuracy_drop=0.01)
    assert PTQRun(cfg, Artifact.open(attention), tmp_path, None).has_activation_matmuls()
    assert not PTQRun(cfg, tiny_inference, tmp_path, None).has_activation_matmuls()
    names = [c.label(cfg.algo) for c in cfg.candidate_list(attention=True)]
    assert names == ["hist", "mse", "avg", "hist-int8[fc]", "hist-skip1", "hist-skip2", "qat"]
    assert "hist-int8[fc]" not in [c.label("hist") for c in cfg.candidate_list()]
    fixed = PTQConfig(max_accuracy_drop=0.01, onednn_int8_ops=["fc"])
    assert len(fixed.candidate_list(attention=True)) == 6  # the list already applies


def test_search_falls_back_to_fc_only_int8(monkeypatch, attention, tmp_path):
    """Every-op INT8 fails the budget (as for ERNIE); the fc-only candidate fits and is kept."""
    from paddleopt.stages import ptq

    fake = _Fake([0.5, 0.5, 0.5, 0.9], [1.5, 1.5, 1.5, 1.2])
    monkeypatch.setattr(ptq._Run, "measure",
                        lambda run, art, data, paired=True: fake(run, art, data, paired))
    data, calib = str(attention / "data.npz"), str(attention / "calib.npz")
    art = run_stage("ptq", {"model_dir": str(attention), "max_accuracy_drop": 0.01,
                            "calibration": {"source": "npz", "path": calib, "batch_size": 16,
                                            "count": 32},
                            "evaluation": {"source": "npz", "path": data},
                            "latency": QUICK_LATENCY}, None, tmp_path)
    cands = art.manifest.metrics["candidates"]
    assert [c["status"] for c in cands[:4]] == ["rejected"] * 3 + ["kept"]
    assert cands[3]["onednn_int8_ops"] == ["fc"] and art.manifest.metrics["chosen"] == \
        "hist-int8[fc]"
    assert art.manifest.quantization["onednn_int8_ops"] == ["fc"]
    assert art.manifest.checks["int8"]["int8_op_list"] == ["fc"]  # verified as deployed
    assert art.manifest.checks["int8"]["int8_kernels"] >= 1


def test_fc_only_int8_attention_model_close_to_fp32(attention, tmp_path):
    from paddleopt.artifact import Artifact
    from paddleopt.deploy.predictor import load_predictor

    data, calib = str(attention / "data.npz"), str(attention / "calib.npz")
    art = run_stage("ptq", {"model_dir": str(attention), "onednn_int8_ops": ["fc"],
                            "calibration": {"source": "npz", "path": calib, "batch_size": 16,
                                            "count": 64},
                            "evaluation": {"source": "npz", "path": data},
                            "latency": QUICK_LATENCY}, None, tmp_path)
    close = art.manifest.checks["int8_vs_fp32"]
    assert close["max_rel_diff"] < MAX_REL and close["top1_agreement"] >= AGREE, close
    assert art.manifest.checks["int8"]["int8_kernels"] >= 4  # q, k, v, head as INT8 fc
    x = np.load(data)["x"][:8]
    pred = load_predictor(art, "paddle_inference", {"threads": 1})
    ref = load_predictor(Artifact.open(attention), "paddle_inference", {"threads": 1}).run(
        [x])[0]
    assert np.abs(pred.run([x])[0] - ref).max() < MAX_REL * np.abs(ref).max()


def test_bad_onednn_int8_ops_fails_at_plan(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "export": {}, "ptq": {"onednn_int8_ops": ["FC"]}}
    cfg["evaluate"]["targets"] = []
    with pytest.raises(ConfigError, match="did you mean 'fc'"):
        plan(cfg)


def test_null_onednn_int8_ops_keeps_old_fingerprints(tmp_path):
    """Work dirs quantized before onednn_int8_ops existed stay reusable with --resume."""
    from paddleopt.stages.pipeline import fingerprint

    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "export": {}, "ptq": {}}
    the_plan = plan(cfg)
    step = the_plan.steps[2]
    assert step.config_dict["onednn_int8_ops"] is None
    now = fingerprint(step, "parent", the_plan.config)
    del step.config_dict["onednn_int8_ops"]  # what the config looked like before the key
    assert fingerprint(step, "parent", the_plan.config) == now
    step.config_dict["onednn_int8_ops"] = ["fc"]  # a set list is part of the fingerprint
    assert fingerprint(step, "parent", the_plan.config) != now


def test_user_metric_over_labels_judges_candidates_and_fp32_alike(attention, tmp_path,
                                                                   monkeypatch):
    """evaluation.metric with labelled data: the user's function(outputs, labels) gets the
    model's outputs and the .npz's labels as saved (strings here, which top-1 could not
    take); fp32 is scored by it too, and the drop is fp32 - INT8 in that metric."""
    (tmp_path / "mymetrics.py").write_text(
        "import numpy as np\n"
        "CALLS = []\n"
        "def named_class_accuracy(outputs, labels):\n"
        "    CALLS.append((len(outputs), outputs[0].shape, labels.dtype.kind, len(labels)))\n"
        "    names = np.array([f'class{i}' for i in outputs[0].argmax(-1)])\n"
        "    return float(np.mean(names == labels))\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import mymetrics

    data = np.load(attention / "data.npz")
    named = np.array([f"class{i}" for i in data["labels"]])
    named[::10] = "nothing"  # 10 of 96 labels no model output can match: fp32 scores 86/96
    np.savez(tmp_path / "named.npz", x=data["x"], labels=named)
    art = run_stage("ptq", {"model_dir": str(attention), "max_accuracy_drop": 0.05,
                            "candidates": [{"algo": "hist"}],
                            "calibration": {"source": "npz",
                                            "path": str(attention / "calib.npz"),
                                            "batch_size": 16, "count": 32},
                            "evaluation": {"source": "npz",
                                           "path": str(tmp_path / "named.npz"),
                                           "metric": "mymetrics:named_class_accuracy"},
                            "latency": QUICK_LATENCY}, None, tmp_path / "out")
    m = art.manifest.metrics
    assert m["accuracy_metric"] == "mymetrics:named_class_accuracy"
    assert m["fp32_accuracy"] == pytest.approx(86 / 96)
    assert m["heldout_fp32_accuracy"] == pytest.approx(86 / 96)
    assert m["accuracy"] <= 86 / 96 + 1e-9 and m["accuracy_drop"] <= 0.05
    assert m["accuracy_drop"] == pytest.approx(m["fp32_accuracy"] - m["accuracy"], abs=1e-6)
    assert m["eval_samples"] == 96
    # every call got all outputs [96, 3] and the 96 string labels: search (fp32, hist) and
    # the final record (INT8, fp32)
    assert set(mymetrics.CALLS) == {(1, (96, 3), "U", 96)}
    assert len(mymetrics.CALLS) >= 4


def test_user_metric_needs_evaluation_data(tmp_path):
    from paddleopt.stages._ptq.config import EvaluationConfig

    assert EvaluationConfig(source="npz", path="x.npz", metric="a.b:c").validate() is None
    problem = EvaluationConfig(source="none", metric="a.b:c").validate()
    assert problem and "needs evaluation data" in problem[0]
