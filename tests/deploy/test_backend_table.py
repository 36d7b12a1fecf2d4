"""The backend table is the only list of backends: every row honours the module contract and
everything that names backends (config, CLI, targets, matrix) is derived from it."""
from __future__ import annotations

import dataclasses
import typing

import pytest

from paddleopt.artifact.manifest import KINDS
from paddleopt.deploy.backends.table import BACKENDS, backends_for, default_backend
from paddleopt.deploy.predictor import backend_module, parse_options
from paddleopt.utils.errors import UserError


@pytest.mark.parametrize("name", list(BACKENDS))
def test_row_module_honours_the_contract(name):
    row = BACKENDS[name]
    assert row.kinds and all(kind in KINDS for kind in row.kinds)
    assert set(row.default_for) <= set(row.kinds)
    module = backend_module(name)
    for attr in ("Options", "is_available", "version", "load"):
        assert hasattr(module, attr), f"{row.module} lacks {attr}"
    assert dataclasses.is_dataclass(module.Options)
    parse_options(name, {})  # every option has a default
    # kinds and extra live in the table only: a second copy in the module would drift
    assert not hasattr(module, "KINDS") and not hasattr(module, "EXTRA")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_exactly_one_default(kind):
    defaults = [n for n, row in BACKENDS.items() if kind in row.default_for]
    assert len(defaults) == 1, (kind, defaults)
    assert default_backend(kind) == defaults[0] and defaults[0] in backends_for(kind)


def test_config_and_cli_take_the_table_names():
    from paddleopt.cli.main import build_parser
    from paddleopt.config.sections import TargetConfig

    backend_type = typing.get_type_hints(TargetConfig)["backend"]
    assert typing.get_args(backend_type) == tuple(BACKENDS)
    parser = build_parser()
    bench = parser._subparsers._group_actions[0].choices["bench"]  # noqa: SLF001
    choices = next(a.choices for a in bench._actions if a.dest == "backend")  # noqa: SLF001
    assert list(choices) == list(BACKENDS)


def test_unknown_backend_suggests_the_closest():
    with pytest.raises(UserError) as err:
        backend_module("onnxrt")
    assert "did you mean 'onnxruntime'" in err.value.fix
