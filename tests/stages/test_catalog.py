"""Every catalogue entry imports and honours the stage contract."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from paddleopt.artifact.manifest import KINDS
from paddleopt.stages.base import Stage
from paddleopt.stages.catalog import CATALOG, stage_class
from paddleopt.utils.errors import ConfigError


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_entry_imports_and_declares_contract(name):
    cls = stage_class(name)
    assert issubclass(cls, Stage) and cls.name == name
    assert dataclasses.is_dataclass(cls.Config)
    cls.Config()  # every option has a default
    assert cls.produces in KINDS
    assert all(kind in KINDS for kind in cls.consumes)


def test_unknown_stage_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'export'"):
        stage_class("exprot")


def test_import_paddleopt_imports_no_heavy_package():
    code = ("import sys, paddleopt, paddleopt.api, paddleopt.stages.catalog, paddleopt.cli.main;"
            "heavy = [m for m in ('paddle', 'paddleslim', 'paddlenlp', 'onnx', 'onnxruntime', "
            "'paddlelite', 'paddle2onnx') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_entry_has_a_role_and_convert_stages_name_their_target():
    from typing import get_args

    from paddleopt.stages.catalog import Role, stage_types

    assert all(entry.role in get_args(Role) for entry in CATALOG.values())
    assert stage_types("quantize") == ("qat", "ptq", "qat_distill")
    for name in stage_types("convert"):
        cls = stage_class(name)
        assert cls(cls.Config()).deploy_target() is not None, name
    for name in set(CATALOG) - set(stage_types("convert")):
        cls = stage_class(name)
        assert cls(cls.Config()).deploy_target() is None, name
