"""Input shapes for dynamic dimensions: parsing, fitting the model, recording."""
from __future__ import annotations

import pytest

from paddleopt.artifact.manifest import IOSpec, Manifest, TensorSpec
from paddleopt.artifact.shapes import (apply_shapes, parse_shape_args, parse_shapes,
                                       require_shapes)
from paddleopt.deploy.bench import make_feeds
from paddleopt.utils.errors import UserError


def _foreign(shape: list[int]) -> Manifest:
    return Manifest(kind="inference", io=IOSpec(inputs=[TensorSpec("x", shape)]),
                    model={"source": "foreign"})


def test_one_shape_or_a_range() -> None:
    assert parse_shapes({"x": "1x3x48x320"})["x"] == {"min": [1, 3, 48, 320],
                                                       "opt": [1, 3, 48, 320],
                                                       "max": [1, 3, 48, 320]}
    rng = parse_shapes(parse_shape_args(["x=1x3x48x96:1x3x48x320:8x3x48x1024"]))["x"]
    assert rng["min"][3] == 96 and rng["opt"][3] == 320 and rng["max"][0] == 8
    with pytest.raises(UserError, match="min .* <= opt"):
        parse_shapes({"x": {"min": [1, 3, 48, 400], "opt": [1, 3, 48, 320]}})
    with pytest.raises(UserError, match="NAME=SHAPE"):
        parse_shape_args(["1x3x48x320"])


def test_shapes_must_fit_the_model_and_drive_made_up_inputs() -> None:
    manifest = _foreign([-1, 3, 48, -1])
    with pytest.raises(UserError, match="does not fit"):
        apply_shapes(manifest, parse_shapes({"x": [1, 1, 48, 320]}))
    with pytest.raises(UserError, match="no input 'image'"):
        apply_shapes(manifest, parse_shapes({"image": [1, 3, 48, 320]}))
    apply_shapes(manifest, parse_shapes({"x": [1, 3, 48, 320]}))
    assert make_feeds(manifest.io.inputs, 4)[0].shape == (4, 3, 48, 320)


def test_foreign_model_without_shape_is_refused_with_the_fix() -> None:
    manifest = _foreign([-1, 3, -1, -1])
    with pytest.raises(UserError) as exc:
        require_shapes(manifest)
    assert "x [-1, 3, -1, -1]" in exc.value.message and "--shape x=1x3x224x224" in exc.value.fix
    with pytest.raises(UserError, match="no shape"):
        make_feeds(manifest.io.inputs, 1, dynamic_dim=None)
    # paddleopt's own models (text: [-1, -1] ids) keep their measured-at-16 behaviour.
    ours = Manifest(kind="inference", io=IOSpec(inputs=[TensorSpec("ids", [-1, -1], "int64")]))
    require_shapes(ours)
    assert make_feeds(ours.io.inputs, 2)[0].shape == (2, 16)
