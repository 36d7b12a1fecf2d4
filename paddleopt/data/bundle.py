"""What image and text data have in common: labelled splits, and a bundle that picks the
train / evaluation / validation split and turns any of them into model inputs.

``Split`` (images) and ``TextSplit`` (texts) are ``LabelledSplit``s; ``DataBundle`` and
``TextDataBundle`` are ``SplitBundle``s that only say how a split becomes feeds
(``features``) and how their loaders batch.
"""
from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any

import numpy as np


class LabelledSplit:
    """A dataclass of per-sample sequences (images, paths, texts) plus ``labels``."""

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Any:
        """The first ``n`` samples (all with None)."""
        if n is None:
            return self
        return dataclasses.replace(self, **{f.name: getattr(self, f.name)[:n]
                                            for f in dataclasses.fields(self)})


class SplitBundle:
    """The pipeline's data: ``splits`` (train/val/test) chosen by ``cfg`` (a DataConfig)."""

    cfg: Any
    splits: Any

    @abstractmethod
    def features(self, split: Any) -> list[np.ndarray]:
        """One array per model input for the samples of ``split``."""

    @property
    def train_split(self) -> Any:
        return self.splits.train.head(self.cfg.train_subset)

    @property
    def eval_split(self) -> Any:
        split = self.splits.test if self.cfg.eval_split == "test" else self.splits.val
        return split.head(self.cfg.eval_subset)

    def eval_feeds(self, limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """(one array per model input, labels) for the first ``limit`` evaluation samples."""
        split = self.eval_split.head(limit)
        return self.features(split), split.labels

    def val_feeds(self, limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Like ``eval_feeds`` on the validation split (the evaluation split when the dataset
        has no validation samples): decisions taken inside stages (sensitivities, accuracy
        budgets) keep the test split untouched."""
        val = self.splits.val
        split = val.head(limit) if val is not None and len(val) else self.eval_split.head(limit)
        return self.features(split), split.labels

    def calibration_feeds(self, count: int) -> list[np.ndarray]:
        """The first ``count`` training samples (never the evaluation split), per input."""
        return self.features(self.train_split.head(count))
