"""DataLoaders with the worker/prefetch knobs from ``data:``, and the data a stage needs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from paddleopt.artifact.manifest import TensorSpec
from paddleopt.config.sections import DataConfig
from paddleopt.data.bundle import SplitBundle
from paddleopt.data.datasets import DatasetSplits, Split, load_splits, make_paddle_dataset, \
    materialize
from paddleopt.data.preprocess import (ImagePreprocess, brightness_stats, image_preprocess,
                                       spec_dict)
from paddleopt.data.workers import WorkerLoader
from paddleopt.utils.imports import import_paddle


def build_loader(dataset: Any, cfg: DataConfig, train: bool, seed: int = 0) -> Any:
    """A paddle DataLoader. With more than one rank, each reads its own shard of the training
    data through ``DistributedBatchSampler`` (the same global batch order on every rank).
    Evaluation loaders are not sharded: every rank scores the whole split, so rank 0's
    metrics (the ones it writes) cover all of it (a sharded split would be padded with
    repeated samples when it does not divide evenly)."""
    paddle = import_paddle()
    batch_size = cfg.batch_size if train else cfg.eval_batch_size
    shuffle = cfg.shuffle and train
    if train and paddle.distributed.get_world_size() > 1:
        sampler = paddle.io.DistributedBatchSampler(
            dataset, batch_size=batch_size, shuffle=shuffle, drop_last=cfg.drop_last and train)
    else:
        sampler = paddle.io.BatchSampler(dataset, batch_size=batch_size, shuffle=shuffle,
                                         drop_last=cfg.drop_last and train)
    kwargs: dict[str, Any] = {"batch_sampler": sampler, "num_workers": cfg.num_workers,
                              "use_shared_memory": cfg.use_shared_memory, "return_list": True}
    if cfg.num_workers > 0:
        kwargs.update(prefetch_factor=cfg.prefetch_factor,
                      persistent_workers=cfg.persistent_workers)
    loader = paddle.io.DataLoader(dataset, **kwargs)
    return WorkerLoader(loader) if cfg.num_workers > 0 else loader


@dataclass
class DataBundle(SplitBundle):
    """The pipeline's image data, resolved once: splits, preprocess and loader factories."""

    cfg: DataConfig
    splits: DatasetSplits
    preprocess: ImagePreprocess
    seed: int

    def features(self, split: Split) -> list[np.ndarray]:
        return [materialize(split, self.preprocess)]

    def train_loader(self) -> Any:
        return build_loader(make_paddle_dataset(self.train_split, self.preprocess), self.cfg,
                            train=True, seed=self.seed)

    def eval_loader(self) -> Any:
        return build_loader(make_paddle_dataset(self.eval_split, self.preprocess), self.cfg,
                            train=False)

    def manifest_fields(self) -> dict[str, Any]:
        """preprocess / labels / dataset entries for a manifest."""
        return {
            "preprocess": spec_dict(self.preprocess),
            "labels": list(self.splits.labels),
            "dataset": {"name": self.cfg.dataset, "root": self.cfg.root,
                        "eval_split": self.cfg.eval_split, "val_fraction": self.cfg.val_fraction,
                        "seed": self.seed,
                        # what `infer` compares raw images with (see brightness_warnings)
                        "brightness": brightness_stats(self.train_split.images)},
        }

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec("x", [-1, self.preprocess.channels, *self.preprocess.size])]


def build_data(cfg: DataConfig, seed: int) -> DataBundle:
    from paddleopt.data.text_datasets import build_text_data, is_text_data

    if is_text_data(cfg.dataset, cfg.preprocess):
        return build_text_data(cfg, seed)  # a TextDataBundle: same interface
    preprocess = image_preprocess(cfg.dataset, cfg.preprocess)
    splits = load_splits(cfg.dataset, cfg.root, cfg.val_fraction, seed, preprocess)
    return DataBundle(cfg, splits, preprocess, seed)


def data_from_manifest(dataset: dict[str, Any], preprocess: dict[str, Any],
                       eval_samples: int | None = None) -> DataBundle | None:
    """Rebuild the evaluation data an artifact was made with (None when it has none)."""
    if not dataset or "name" not in dataset:
        return None
    from paddleopt.data.text_datasets import is_text_data, text_data_from_manifest

    if is_text_data(dataset["name"], preprocess):
        return text_data_from_manifest(dataset, preprocess, eval_samples)
    cfg = DataConfig(dataset=dataset["name"], root=dataset.get("root"),
                     eval_split=dataset.get("eval_split", "test"),
                     val_fraction=dataset.get("val_fraction", 0.1), eval_subset=eval_samples)
    pre = image_preprocess(cfg.dataset, preprocess, path="manifest.preprocess")
    seed = int(dataset.get("seed", 0))
    return DataBundle(cfg, load_splits(cfg.dataset, cfg.root, cfg.val_fraction, seed, pre), pre,
                      seed)
