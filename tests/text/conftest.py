"""A tiny ERNIE text pipeline (train -> export on a few hundred review sentences), built once
per session for the text tests."""
from __future__ import annotations

from pathlib import Path

import pytest


def tiny_text_config(work_dir: Path | str, **overrides: object) -> dict:
    """2-layer, hidden-32 ERNIE, max_seq_len 32, 320 training sentences, one epoch."""
    config = {
        "name": "tiny_text",
        "work_dir": str(work_dir),
        "seed": 5,
        "model": {"arch": "ernie_cls", "num_classes": 2,
                  "kwargs": {"hidden_size": 32, "num_hidden_layers": 2,
                             "num_attention_heads": 2, "max_position_embeddings": 64}},
        "data": {"dataset": "chn_sentiment", "train_subset": 320, "eval_subset": 64,
                 "batch_size": 32, "eval_batch_size": 64,
                 "preprocess": {"type": "text", "max_seq_len": 32}},
        "stages": {
            "train": {"epochs": 1, "optimizer": {"name": "adamw", "lr": 0.002},
                      "progress_bar": False},
            "export": {"parity_samples": 32},
        },
        "evaluate": {"batch_sizes": [1], "warmup": 1, "iters": 3, "max_seconds": 0.5,
                     "eval_samples": 64, "targets": []},
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def tiny_text_run(tmp_path_factory: pytest.TempPathFactory):
    """RunResult: artifacts['train'] (checkpoint) and ['export'] (inference)."""
    from paddleopt import api

    return api.run(tiny_text_config(tmp_path_factory.mktemp("tiny_text")))
