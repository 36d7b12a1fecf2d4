"""Baidu LAC (Chinese word segmentation, POS/NER tagging, word importance) on Paddle Inference 2.6.

LAC 2.1.2 ships good models but its Python front-end imports ``paddle.fluid``, which paddle
2.6 no longer has. This module runs the same shipped models (``lac_model``, ``seg_model``,
``rank_model``) through ``paddle.inference`` and reimplements the front-end around them:
input ids (``lac_vocab``), the user dictionary (``lac_custom``) and the decoding of CRF tags
into words, all following LAC's source so that the outputs are identical (see
``tests/text/test_lac.py`` for how that is checked against the original LAC).

    >>> from paddleopt.text.lac import LAC
    >>> LAC(mode="lac").run("百度是一家高科技公司")
    [['百度', '是', '一家', '高科技', '公司'], ['ORG', 'v', 'm', 'n', 'n']]

Only the lac package's data files are used, never its code; importing this module imports
neither paddle nor LAC (paddle is imported when the first ``LAC`` is built).

Differences from LAC 2.1.2, all on malformed or edge-case input:
- ``run`` never modifies the caller's list (LAC pops empty strings out of it).
- Empty strings inside a batch keep their position (LAC misplaces them when two or more
  empty strings precede a non-empty text).
- ``run("")`` always has the single-text shape: ``[]``, ``[[], []]``, ``[[], [], []]``. LAC
  returns ``[[[], [], []]]`` in rank mode, and in lac/seg mode the batch shape if the
  previous call was a batch (it does not reset its batch flag for an empty string).
- A non-str input raises ``UserError`` (LAC fails somewhere inside with a TypeError).
- Rank mode matches LAC run in a fresh process. Inside a long-lived process LAC's rank
  scores can drift: paddle 1.8.5's IR-optimised rank predictor reads uninitialised memory.
- No ``train()`` and no GPU switch: this is an inference front-end for CPU deployment.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any, Sequence, Union

from paddleopt.text.lac_custom import Customization
from paddleopt.text.lac_fuse import batched_gru_model
from paddleopt.text.lac_vocab import LacModelFiles, LacSegmenter, LacVocab
from paddleopt.utils.errors import UserError

LAC_INSTALL_FIX = 'pip install "setuptools<81" && pip install --no-build-isolation lac==2.1.2'

# mode -> the model directory inside the lac package.
MODEL_DIRS = {"lac": "lac_model", "seg": "seg_model", "rank": "rank_model"}

# seg: words; lac: [words, tags]; rank: [words, tags, ranks].
Result = Union[list[str], list[list[str]], list[list[Any]]]


def lac_package_dir() -> str:
    """The installed lac package's folder, found without importing it (its code needs fluid)."""
    spec = importlib.util.find_spec("LAC")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the LAC models are not installed: the Python package 'lac' (module LAC) ships "
            "the model files and dictionaries that paddleopt.text.lac runs.",
            f"run: {LAC_INSTALL_FIX}",
        )
    return list(spec.submodule_search_locations)[0]


def default_model_dir(mode: str) -> str:
    """The shipped model directory for ``mode``."""
    return os.path.join(lac_package_dir(), MODEL_DIRS[mode])


class _Predictor:
    """A Paddle Inference predictor fed with one LoD batch of int64 sequences.

    LAC's models take variable-length sequences as LoD tensors: all sequences concatenated
    into one ``[total_len, 1]`` int64 tensor plus the offsets ``[0, len1, len1+len2, ...]``.
    A whole batch of texts therefore costs one predictor call.
    """

    # oneDNN caches kernels per input shape; LAC's shapes change with every batch, so an
    # unbounded cache would grow for as long as the process runs.
    ONEDNN_CACHE_CAPACITY = 32

    def __init__(self, model_dir: str, use_onednn: bool, cpu_threads: int,
                 batched_gru: bool = False) -> None:
        from paddleopt.utils.imports import import_paddle

        import_paddle()  # imports zlib and gzip first, see STACK.md
        from paddle import inference

        buffers = batched_gru_model(model_dir) if batched_gru and not use_onednn else None
        if buffers is None:
            config = _inference_config(inference, model_dir)
        else:
            config = inference.Config()
            config.set_model_buffer(buffers[0], len(buffers[0]), buffers[1], len(buffers[1]))
        config.disable_glog_info()
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(cpu_threads)
        if use_onednn:
            config.enable_mkldnn()
            config.set_mkldnn_cache_capacity(self.ONEDNN_CACHE_CAPACITY)
        else:
            config.disable_mkldnn()  # a fresh paddle 2.6 Config has oneDNN on
        self._predictor = inference.create_predictor(config)
        self._lock = threading.Lock()  # a predictor must not run twice at the same time

    def run(self, inputs: Sequence[Any], lod: list[int]) -> tuple[Any, list[int]]:
        """Feed each id list or array (all sharing ``lod``) to the inputs in order.

        Returns the first output as a flat int64 array, and its sequence offsets.
        """
        import numpy as np

        with self._lock:
            names = self._predictor.get_input_names()
            for name, values in zip(names, inputs):
                handle = self._predictor.get_input_handle(name)
                array = np.asarray(values, dtype="int64").reshape([-1, 1])
                handle.reshape(list(array.shape))
                handle.copy_from_cpu(array)
                handle.set_lod([lod])
            self._predictor.run()
            output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])
            values = output.copy_to_cpu().reshape(-1)
            out_lod = output.lod()
        return values, list(out_lod[0]) if out_lod else lod


def _inference_config(inference: Any, model_dir: str) -> Any:
    """Config for LAC's layout (``__model__`` + one file per parameter) or a combined export."""
    if os.path.isfile(os.path.join(model_dir, "__model__")):
        return inference.Config(model_dir)
    if os.path.isdir(model_dir):
        programs = sorted(f for f in os.listdir(model_dir) if f.endswith(".pdmodel"))
        if len(programs) == 1:
            stem = os.path.join(model_dir, programs[0][: -len(".pdmodel")])
            if os.path.isfile(stem + ".pdiparams"):
                return inference.Config(stem + ".pdmodel", stem + ".pdiparams")
    raise UserError(
        f"no Paddle inference model in {model_dir!r}: expected a '__model__' file with its "
        "parameter files, or one NAME.pdmodel with NAME.pdiparams.",
        "pass model_path=None to use the models shipped in the lac package.",
    )


class _Tagger:
    """One CRF tagging model (lac_model or seg_model): texts -> one tag per character."""

    def __init__(self, model_dir: str, use_onednn: bool, cpu_threads: int,
                 word_level: bool, batched_gru: bool) -> None:
        files = LacModelFiles.from_dir(model_dir)
        self.vocab = LacVocab(files)
        # lac_model reads dictionary words as single ids; seg_model reads characters only.
        self.segmenter = LacSegmenter(files.seg_dict) if word_level else None
        self.predictor = _Predictor(files.checkpoint_dir, use_onednn, cpu_threads, batched_gru)
        # Per tag id: does it start a word ("-B"/"-S", see tags_to_words)?
        import numpy as np

        size = max(self.vocab.id2label) + 1
        self.starts = np.zeros(size, dtype=bool)
        for tag_id, label in self.vocab.id2label.items():
            self.starts[tag_id] = label.endswith("B") or label.endswith("S")

    def split_words(self, text: str, tag_ids: Any) -> list[str]:
        """seg model, no user dictionary: per-character tag ids -> words, vectorized.

        The same words as ``tags_to_words(text, labels(tag_ids))``: a word starts at the
        first character and at every "-B"/"-S" tag.
        """
        import numpy as np

        cuts = np.flatnonzero(self.starts[tag_ids]).tolist()
        if not cuts or cuts[0] != 0:
            cuts.insert(0, 0)
        cuts.append(len(text))
        return [text[begin:end] for begin, end in zip(cuts, cuts[1:])]

    def encode(self, texts: list[str]) -> tuple[list[int], list[int], list[list[int]]]:
        """Texts -> concatenated ids, LoD offsets and, per text, characters covered per id."""
        ids: list[int] = []
        lod = [0]
        spans: list[list[int]] = []
        for text in texts:
            if self.segmenter is None:
                text_ids, lengths = self.vocab.char_ids(text), [1] * len(text)
            else:
                text_ids, lengths = self.vocab.word_ids(self.segmenter.cut(text))
            ids.extend(text_ids)
            lod.append(lod[-1] + len(text_ids))
            spans.append(lengths)
        return ids, lod, spans


def expand_tags(tags: list[str], spans: list[int]) -> list[str]:
    """Give back one tag per character: a word read as one id spans several characters.

    Its first character keeps the tag ("n-B"), the others continue it ("n-I"), as in LAC's
    ``Model.parse_result``.
    """
    out: list[str] = []
    for tag, span in zip(tags, spans):
        out.append(tag)
        out.extend([tag[:-2] + "-I"] * (span - 1))
    return out


def tags_to_words(text: str, tags: list[str]) -> tuple[list[str], list[str]]:
    """Per-character tags -> words and one label per word.

    A "-B" or "-S" tag starts a word, anything else continues it; the label is the tag
    without its two-character position suffix, taken from the word's last character.
    """
    words: list[str] = []
    labels: list[str] = []
    for char, tag in zip(text, tags):
        if not words or tag.endswith("B") or tag.endswith("S"):
            words.append(char)
            labels.append(tag[:-2])
        else:
            words[-1] += char
            labels[-1] = tag[:-2]
    return words, labels


def word_ranks(tags: list[str], ranks: list[int], spans: list[int]) -> list[int]:
    """Per-id importance (0-3) -> one importance per word, the maximum over its characters."""
    char_ranks: list[int] = []
    for rank, span in zip(ranks, spans):
        char_ranks.extend([rank] * span)
    out: list[int] = []
    for tag, rank in zip(tags, char_ranks):
        if not out or tag.endswith("B") or tag.endswith("S"):
            out.append(rank)
        else:
            out[-1] = max(out[-1], rank)
    return out


def plan_calls(lengths: Sequence[int], max_texts: int = 64,
               max_padded: int = 4096) -> list[list[int]]:
    """Group text indices into predictor calls of similar-length texts.

    Paddle's oneDNN GRU pads every sequence of a LoD batch to the longest one, so one call
    over texts of very different lengths costs (number of texts) x (longest text). Sorting by
    length and capping that product made 1000 People's Daily sentences 7x faster than one
    call. Each text's result does not depend on its batch, so the grouping is invisible.
    """
    calls: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        grown = (len(current) + 1) * lengths[index]  # sorted: this text is the longest
        if current and (len(current) >= max_texts or grown > max_padded):
            calls.append(current)
            current = []
        current.append(index)
    if current:
        calls.append(current)
    return calls


def _split(values: Any, lod: list[int]) -> list[Any]:
    return [values[begin:end] for begin, end in zip(lod, lod[1:])]


def _as_batch(texts: Any) -> tuple[list[str], bool]:
    """Normalise ``run``'s argument to a list of texts; tell whether it was a batch."""
    fix = "pass a str, or a list of str (decode bytes first, e.g. data.decode('utf-8'))."
    if isinstance(texts, str):
        return [texts], False
    if isinstance(texts, (list, tuple)):
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise UserError(f"LAC.run() got a {type(text).__name__} at position {index}; "
                                "every text must be a str.", fix)
        return list(texts), True
    raise UserError(f"LAC.run() got a {type(texts).__name__}; it takes a str or a list of str.",
                    fix)


class LAC:
    """Lexical analysis with LAC's models, API-compatible with ``LAC.LAC`` 2.1.2 for inference.

    Args:
        mode: "seg" (words only), "lac" (words + POS/NER tags) or "rank" (words, tags and a
            0-3 importance per word).
        use_onednn: run with oneDNN kernels (much faster on x86 CPUs).
        cpu_threads: math library threads per predictor.
        model_path: a model directory laid out like the lac package's ``<mode>_model``;
            None uses the shipped one. Rank mode also loads ``lac_model`` next to it, as LAC.
        batched_gru: without oneDNN, run the BiGRU batched (``lac_fuse``: same tags,
            ~1.4x faster); False keeps Paddle's own fusion, one text at a time.

    One instance is safe to share between threads, but runs one batch at a time: pass many
    texts to one ``run`` call for throughput (they are grouped into predictor calls of
    similar-length texts, see ``plan_calls``).
    """

    def __init__(self, mode: str = "lac", use_onednn: bool = True, cpu_threads: int = 1,
                 model_path: str | os.PathLike | None = None, batched_gru: bool = True) -> None:
        if mode not in MODEL_DIRS:
            raise UserError(f"unknown LAC mode {mode!r}.",
                            f"use one of: {', '.join(MODEL_DIRS)}.")
        if isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int) or cpu_threads < 1:
            raise UserError(f"cpu_threads must be a positive int, got {cpu_threads!r}.",
                            "pass e.g. cpu_threads=1.")
        self.mode = mode
        # seg mode without a user dictionary decodes tag ids to words without label strings;
        # False takes the general path (same words; benchmarks/text.py times both).
        self.vectorized_seg = True
        self.model_path = os.fspath(model_path) if model_path else default_model_dir(mode)
        self.custom: Customization | None = None
        self._rank: _Predictor | None = None
        if mode == "seg":
            self._tagger = _Tagger(self.model_path, use_onednn, cpu_threads, word_level=False,
                                   batched_gru=batched_gru)
        elif mode == "lac":
            self._tagger = _Tagger(self.model_path, use_onednn, cpu_threads, word_level=True,
                                   batched_gru=batched_gru)
        else:
            # The rank model scores the lac model's output: LAC loads lac_model from the
            # rank model's parent directory.
            lac_dir = os.path.join(os.path.dirname(os.path.normpath(self.model_path)),
                                   MODEL_DIRS["lac"])
            self._tagger = _Tagger(lac_dir, use_onednn, cpu_threads, word_level=True,
                                   batched_gru=batched_gru)
            rank_files = LacModelFiles.from_dir(self.model_path)
            self._rank = _Predictor(rank_files.checkpoint_dir, use_onednn, cpu_threads)

    def run(self, texts: str | Sequence[str]) -> Result | list[Result]:
        """Analyse one text (str) or a batch (list of str).

        Returns, per text: seg -> ``words``; lac -> ``[words, tags]``; rank ->
        ``[words, tags, ranks]``; a batch returns a list of those in input order. An empty
        text gives empty lists.
        """
        batch, is_batch = _as_batch(texts)
        results = [self._empty_result() for _ in batch]
        positions = [i for i, text in enumerate(batch) if text]
        for call in plan_calls([len(batch[i]) for i in positions]):
            chosen = [positions[i] for i in call]
            for position, result in zip(chosen, self._analyse([batch[i] for i in chosen])):
                results[position] = result
        return results if is_batch else results[0]

    def load_customization(self, customization_file: str | os.PathLike,
                           sep: str | None = None) -> None:
        """Load a user dictionary, replacing any loaded before (see ``lac_custom``).

        ``sep`` separates the words of an item; None means any whitespace.
        """
        custom = Customization()
        custom.load(customization_file, sep)
        self.custom = custom

    def add_word(self, word: str, sep: str | None = None) -> None:
        """Add one user-dictionary item, e.g. "花/n 开/v", to the loaded dictionary."""
        if self.custom is None:
            self.custom = Customization()
        self.custom.add_word(word, sep)

    def _empty_result(self) -> Result:
        return {"seg": [], "lac": [[], []], "rank": [[], [], []]}[self.mode]

    def _analyse(self, texts: list[str]) -> list[Result]:
        """Non-empty texts -> results, with one predictor call per model."""
        ids, lod, spans = self._tagger.encode(texts)
        crf_ids, out_lod = self._tagger.predictor.run([ids], lod)
        per_text = _split(crf_ids, out_lod)
        if self.mode == "seg" and self.custom is None and self.vectorized_seg:
            return [self._tagger.split_words(text, tag_ids)
                    for text, tag_ids in zip(texts, per_text)]

        char_tags: list[list[str]] = []
        for text, tag_ids, text_spans in zip(texts, per_text, spans):
            tags = expand_tags(self._tagger.vocab.labels(tag_ids.tolist()), text_spans)
            if self.custom is not None:
                self.custom.apply(text, tags)
            char_tags.append(tags)

        if self.mode == "seg":
            return [tags_to_words(text, tags)[0] for text, tags in zip(texts, char_tags)]
        if self.mode == "lac":
            return [list(tags_to_words(text, tags)) for text, tags in zip(texts, char_tags)]

        assert self._rank is not None
        # The rank model reads the ids together with the lac model's raw (uncustomised) tags.
        ranks, rank_lod = self._rank.run([ids, crf_ids], out_lod)
        results: list[Result] = []
        for text, tags, text_ranks, text_spans in zip(texts, char_tags,
                                                      _split(ranks, rank_lod), spans):
            words, labels = tags_to_words(text, tags)
            results.append([words, labels, word_ranks(tags, text_ranks.tolist(), text_spans)])
        return results
