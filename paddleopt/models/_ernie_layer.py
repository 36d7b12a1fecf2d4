"""The ERNIE classifier layer. Imports paddle and paddlenlp at module level on purpose: it is
only imported by ``paddleopt.models.text.ernie_cls``, and ``paddle.jit.save`` (dy2static)
re-executes ``forward``'s source against this module's globals, so every name ``forward``
uses must be a global here (a class defined inside a function fails with NameError)."""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

from paddleopt.utils.imports import import_paddle

paddle = import_paddle()
with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
    warnings.simplefilter("ignore")
    from paddlenlp.transformers import ErnieConfig, ErnieForSequenceClassification

__all__ = ["ErnieClassifier", "ErnieConfig", "ErnieForSequenceClassification"]


class ErnieClassifier(ErnieForSequenceClassification):
    """``forward(input_ids, token_type_ids) -> logits`` for training, export and parity.

    Position ids are computed here from ``input_ids``: paddlenlp 2.8.1 builds them with
    ``paddle.ones(inputs_embeds.shape[:-1])``, which fails under ``paddle.jit.save`` when the
    batch or sequence dimension is dynamic (-1 in the shape). ``ones_like`` works for any shape
    and gives the same ids. Padding is masked by paddlenlp itself (``input_ids ==
    pad_token_id``), so a text gets the same logits however much it is padded.
    """

    def forward(self, input_ids: Any, token_type_ids: Any = None) -> Any:
        ones = paddle.ones_like(input_ids)
        position_ids = paddle.cumsum(ones, axis=-1) - ones
        if token_type_ids is None:
            token_type_ids = paddle.zeros_like(input_ids)
        # The explicit base call: dy2static cannot translate a bare super().
        return ErnieForSequenceClassification.forward(
            self, input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
            return_dict=False)
