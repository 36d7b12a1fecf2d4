"""Seeds for reproducible runs."""
from __future__ import annotations

import random

import numpy as np

from paddleopt.utils.imports import import_paddle


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    import_paddle().seed(seed)
