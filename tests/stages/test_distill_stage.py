"""distill stage: student from a spec or the input, teacher from the input, an earlier stage,
a folder or a spec + weights; alpha 0 is the no-teacher baseline; bad settings fail at plan."""
from __future__ import annotations

import pytest

from conftest import tiny_config
from paddleopt.stages.pipeline import plan
from paddleopt.utils.errors import ConfigError
from stage_helpers import QUICK_FT, run_stage

STUDENT = {"arch": "lenet", "num_classes": 10, "in_channels": 1, "width_mult": 0.5}


def test_small_student_from_spec_learns_from_the_input_teacher(tiny_checkpoint, tmp_path):
    art = run_stage("distill", {"student": STUDENT, "temperature": 4.0, "alpha": 0.9,
                                "finetune": QUICK_FT}, tiny_checkpoint, tmp_path)
    m = art.manifest.metrics
    assert art.kind == "checkpoint"
    assert art.manifest.model["width_mult"] == 0.5 and art.manifest.model["arch"] == "lenet"
    assert m["params"] < m["teacher_params"] == tiny_checkpoint.manifest.metrics["params"]
    assert m["teacher_accuracy"] == pytest.approx(tiny_checkpoint.manifest.metrics["accuracy"])
    assert 0 < m["accuracy"] <= 1 and m["distill"]["teacher"] == str(tiny_checkpoint.path)
    assert len(art.manifest.lineage) == 0  # a new network: lineage starts at this stage
    exported = run_stage("export", {}, art, tmp_path, stage_id="export_student")
    assert exported.manifest.checks["parity_paddle_inference_vs_dygraph_max_abs_diff"] < 1e-4


def test_alpha_zero_is_the_no_teacher_baseline(tiny_checkpoint, tmp_path):
    art = run_stage("distill", {"student": STUDENT, "alpha": 0.0, "finetune": QUICK_FT},
                    tiny_checkpoint, tmp_path)
    m = art.manifest.metrics
    assert m["teacher_accuracy"] is None and m["distill"]["teacher"] is None


def test_train_subset_limits_what_the_student_learns_from(tiny_checkpoint, tmp_path):
    art = run_stage("distill", {"student": STUDENT, "train_subset": 64, "finetune": QUICK_FT},
                    tiny_checkpoint, tmp_path)
    assert art.manifest.metrics["distill"]["train_samples"] == 64
    # the teacher's own data is untouched: it is scored on the same eval split
    assert art.manifest.metrics["teacher_accuracy"] == pytest.approx(
        tiny_checkpoint.manifest.metrics["accuracy"])


def test_teacher_by_stage_id_with_feature_pairs(tiny_checkpoint, tmp_path):
    # the input checkpoint is the student; the teacher is the earlier stage "train"
    art = run_stage("distill", {"teacher": {"artifact": "train"}, "alpha": 0.5,
                                "feature_pairs": {"features.3": "features.3"},
                                "finetune": QUICK_FT},
                    tiny_checkpoint, tmp_path, artifacts={"train": tiny_checkpoint})
    m = art.manifest.metrics
    assert m["distill"]["teacher"] == "train" and m["distill"]["adapters"] == 0
    assert art.manifest.model == tiny_checkpoint.manifest.model
    assert [e.stage for e in art.manifest.lineage] == ["train"]  # continues the student's


def test_teacher_from_spec_and_weights(tiny_checkpoint, tmp_path):
    teacher = {"model": {"arch": "lenet", "num_classes": 10, "in_channels": 1},
               "weights": str(tiny_checkpoint.file("weights"))}
    art = run_stage("distill", {"teacher": teacher, "student": STUDENT, "finetune": QUICK_FT},
                    None, tmp_path)
    assert art.manifest.metrics["distill"]["teacher"] == str(tiny_checkpoint.file("weights"))
    assert art.manifest.metrics["teacher_accuracy"] > 0.5


@pytest.mark.parametrize("stages, match", [
    ({"distill": {}}, "distill has no student"),
    ({"train": {}, "distill": {"alpha": 0.5}}, "distill has no teacher"),
    ({"train": {}, "distill": {"teacher": {"artifact": "later"}}, "later": {"type": "train"}},
     "stage 'later' runs after 'distill'"),
    ({"train": {}, "distill": {"teacher": {"artifact": "nope"}}},
     "neither an earlier stage id nor an artifact folder"),
    ({"distill": {"student": STUDENT, "teacher": {"model": {"arch": "lenet"}}}},
     "teacher.model needs teacher.weights"),
    ({"distill": {"student": STUDENT, "teacher": {"model": {"arch": "lenet"},
                                                  "weights": "/no/such.pdparams"}}},
     "does not exist"),
    ({"train": {}, "distill": {"student": STUDENT, "alpha": 1.5}}, r"alpha must be in \[0, 1\]"),
    ({"train": {}, "distill": {"student": STUDENT, "temperature": 0}}, "temperature must be > 0"),
    ({"train": {}, "distill": {"student": STUDENT, "train_subset": 0}},
     "train_subset must be >= 1"),
    ({"train": {}, "distill": {"student": {"arch": "resnet_huge"}}}, "unknown model.arch"),
])
def test_bad_config_fails_at_plan(tmp_path, stages, match):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = stages
    cfg["evaluate"]["targets"] = []
    with pytest.raises(ConfigError, match=match):
        plan(cfg)
