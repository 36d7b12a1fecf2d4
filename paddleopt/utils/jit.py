"""``paddle.jit.save`` without the leftovers of an earlier failed trace.

Paddle 2.6.2's dy2static keeps a process-wide ``ParametersRecorder`` keyed by ``id(program)``.
When tracing raises (a model that cannot be converted, a bad input spec), the parameters it
recorded stay behind; a later trace whose program object happens to reuse that address picks
them up and ``jit.save`` fails with ``KeyError: 'conv2d_1.w_0'`` (a parameter of the *old*
model). Whether it happens depends on memory addresses, so it looks random. Tracing in
paddleopt is synchronous, so nothing is recording when these helpers run and clearing the
recorder before and after each save is safe.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from paddleopt.utils.imports import import_paddle


def clear_trace_leftovers() -> None:
    """Forget parameters that failed dy2static traces left in Paddle's global recorders."""
    import_paddle()
    from paddle.jit.dy2static.program_translator import ProgramTranslator

    translator = ProgramTranslator.get_instance()
    translator._params_recorder.params_dict.clear()
    translator._inplace_map.params_dict.clear()


def save_layer(layer: Any, path_prefix: str, input_spec: Sequence[Any] | None = None,
               **configs: Any) -> None:
    """``paddle.jit.save(layer, path_prefix, input_spec, **configs)``, safe to call after a
    failed trace in the same process (see the module docstring)."""
    paddle = import_paddle()
    clear_trace_leftovers()
    try:
        paddle.jit.save(layer, path_prefix, input_spec=input_spec, **configs)
    finally:
        clear_trace_leftovers()
