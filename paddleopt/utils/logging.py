"""The `paddleopt` logger. It owns its handler and level because `import paddle` resets the root
logger's level to WARNING, which would silence our INFO lines if we relied on the root."""
from __future__ import annotations

import logging
import sys

LOGGER_NAME = "paddleopt"


def setup_logging(verbose: bool = False) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_paddleopt", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[paddleopt] %(message)s"))
        handler._paddleopt = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    return logger
