"""Small helpers shared by the compression modules."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from paddleopt.utils.imports import import_paddle


@contextlib.contextmanager
def quiet_paddleslim(level: int = logging.ERROR) -> Iterator[None]:
    """Raise the level of PaddleSlim's loggers (and swallow its stray prints) for a block.

    PaddleSlim logs one INFO line per pruned variable and per sensitivity step, and
    ``UnstructuredPruner`` prints one line per parameter; in a pipeline log that drowns what
    matters. Its loggers are created per module with their own handlers, so we set each one.
    """
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith("paddleslim")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        # PaddleSlim 2.6 calls np.product (deprecated in numpy 1.25) thousands of times.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        for lg, lvl in zip(loggers, old, strict=True):
            lg.setLevel(lvl)


@contextlib.contextmanager
def static_mode() -> Iterator[Any]:
    """Run a block in Paddle static-graph mode with a fresh scope and programs.

    Static-graph APIs (PTQ, ``load_inference_model``) flip a process-wide switch. If it is not
    switched back, every later dygraph call in the process breaks in confusing ways, so the
    switch is undone in ``finally`` even when the block raises. A fresh ``Scope`` keeps the
    calibration tensors out of the global scope (they would otherwise stay in memory).
    """
    paddle = import_paddle()
    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope), \
                paddle.static.program_guard(paddle.static.Program(), paddle.static.Program()):
            yield scope
    finally:
        if was_dynamic:
            paddle.disable_static()


def count_params(model: Any) -> int:
    """Number of elements in the model's parameters (BatchNorm statistics included)."""
    import numpy as np

    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


def check_fraction(value: float, name: str, *, low_open: bool = False,
                   example: str = "0.5") -> None:
    """Reject a ratio outside [0, 1) (or (0, 1) with ``low_open``) with a UserError."""
    from paddleopt.utils.errors import UserError

    ok = (0 < value < 1) if low_open else (0 <= value < 1)
    if not ok:
        rng = "(0, 1)" if low_open else "[0, 1)"
        raise UserError(f"{name} must be in {rng}, got {value}.", f"use e.g. {name}: {example}")
