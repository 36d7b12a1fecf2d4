"""Config loading, `base:` inheritance, -o overrides and the typed schema's errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from paddleopt.config.loader import apply_overrides, load_config, parse_override
from paddleopt.config.schema import parse
from paddleopt.config.sections import PipelineConfig
from paddleopt.utils.errors import ConfigError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_base_inheritance_merges_mappings_and_replaces_values(tmp_path):
    write(tmp_path / "base.yaml", "name: b\nseed: 1\ndata: {dataset: mnist, batch_size: 8}\n"
                                  "stages: {train: {epochs: 3}}\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\nname: c\ndata: {batch_size: 16}\n")
    cfg = load_config(child)
    assert cfg["name"] == "c" and cfg["seed"] == 1
    assert cfg["data"] == {"dataset": "mnist", "batch_size": 16}
    assert cfg["stages"]["train"]["epochs"] == 3


def test_base_cycle_is_reported(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_overrides_parse_with_safe_load_and_stage_shorthand():
    cfg = {"name": "x", "stages": {"train": {"epochs": 3}}, "data": {"batch_size": 8}}
    out = apply_overrides(cfg, ["train.epochs=1", "data.batch_size=32", "name=y",
                                "stages.train.optimizer.lr=1e-3", "data.root=null"],
                          {"train": ["stages"]})
    assert out["stages"]["train"]["epochs"] == 1
    assert out["data"]["batch_size"] == 32 and out["data"]["root"] is None
    assert out["stages"]["train"]["optimizer"]["lr"] == 1e-3
    assert cfg["stages"]["train"]["epochs"] == 3  # input untouched
    # values are data, never code
    assert parse_override("a=__import__('os')")[1] == "__import__('os')"


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="no '='"):
        parse_override("train.epochs")


@dataclass
class Inner:
    lr: float = 0.1
    name: Literal["sgd", "adam"] = "sgd"


@dataclass
class Outer:
    epochs: int = 1
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = field(default_factory=list)


def test_schema_builds_typed_objects_and_fills_defaults():
    obj = parse(Outer, {"epochs": 2, "inner": {"lr": 1}, "sizes": [1, 2]})
    assert obj.epochs == 2 and obj.inner.lr == 1.0 and isinstance(obj.inner.lr, float)
    assert obj.inner.name == "sgd" and obj.sizes == [1, 2]


@pytest.mark.parametrize("data, match", [
    ({"epoch": 2}, r"unknown key 'epoch'(.|\n)*did you mean 'epochs'"),
    ({"epochs": "2"}, r"'epochs': expected int, got str"),
    ({"epochs": True}, r"'epochs': expected int"),
    ({"inner": {"name": "adamw"}}, r"'inner.name': 'adamw' is not allowed \(did you mean 'adam'"),
    ({"sizes": 3}, r"'sizes': expected a list of int"),
    ({"sizes": [1, "x"]}, r"'sizes\[1\]'"),
])
def test_schema_errors_name_key_expectation_and_fix(data, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse(Outer, data, source="my.yaml")
    assert str(info.value).startswith("my.yaml: invalid config")
    assert info.value.fix


def test_pipeline_config_requires_name_and_stages():
    with pytest.raises(ConfigError, match="required key 'name'"):
        parse(PipelineConfig, {"stages": {"train": {}}})
    with pytest.raises(ConfigError, match="'stages' is empty"):
        parse(PipelineConfig, {"name": "x", "stages": {}})


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = write(tmp_path / "bad.yaml", "name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
