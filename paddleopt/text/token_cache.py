"""The token cache: (settings, text) -> encoded ids, in the process and on disk."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np

from paddleopt.text.spec import LAC_ONEDNN, NOT_IN_KEY, TextPreprocess

log = logging.getLogger("paddleopt")


class TokenCache:
    """(settings, text) -> encoded ids, in this process and optionally on disk.

    ``hits``/``misses`` count lookups; ``stores`` counts texts added. One instance per settings
    key and cache_dir is shared by every encoder of the process (``TokenCache.get``).
    """

    _registry: ClassVar[dict[tuple[str, str | None], TokenCache]] = {}
    _lock = threading.Lock()

    def __init__(self, key: str, cache_dir: str | None = None) -> None:
        self.key = key
        self.path = Path(cache_dir) / f"ernie-{key[:24]}.pkl" if cache_dir else None
        self.entries: dict[bytes, tuple[np.ndarray, bool]] = {}
        self.hits = self.misses = self.stores = 0
        self._dirty = False
        if self.path is not None and self.path.is_file():
            self._load()

    @classmethod
    def get(cls, key: str, cache_dir: str | None = None) -> TokenCache:
        with cls._lock:
            name = (key, str(Path(cache_dir).resolve()) if cache_dir else None)
            if name not in cls._registry:
                cls._registry[name] = cls(key, cache_dir)
            return cls._registry[name]

    @classmethod
    def clear_all(cls) -> None:
        """Forget every in-process cache (tests; disk caches stay)."""
        with cls._lock:
            cls._registry.clear()

    def text_key(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def lookup(self, text: str) -> tuple[np.ndarray, bool] | None:
        found = self.entries.get(self.text_key(text))
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def store(self, text: str, ids: np.ndarray, truncated: bool) -> None:
        self.entries[self.text_key(text)] = (ids, truncated)
        self.stores += 1
        self._dirty = True

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self) -> None:
        assert self.path is not None
        try:
            with open(self.path, "rb") as fh:
                data = pickle.load(fh)
            if data.get("key") != self.key:
                return
            ids, offsets, truncated = data["ids"], data["offsets"], data["truncated"]
            for i, text_key in enumerate(data["keys"]):
                self.entries[text_key] = (ids[offsets[i]:offsets[i + 1]], bool(truncated[i]))
        except Exception as exc:  # noqa: BLE001 - a damaged cache only costs a slower start
            log.warning("ignoring the unreadable token cache %s (%s: %s)", self.path,
                        type(exc).__name__, exc)
            self.entries.clear()

    def save(self) -> Path | None:
        """Write the cache file (atomically) if anything was added since the last save."""
        if self.path is None or not self._dirty:
            return None
        keys = list(self.entries)
        arrays = [self.entries[k][0] for k in keys]
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        data = {"key": self.key, "keys": keys, "offsets": offsets,
                "ids": np.concatenate(arrays).astype(np.int32) if arrays else
                np.zeros(0, np.int32),
                "truncated": np.array([self.entries[k][1] for k in keys], dtype=bool)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(self.path)
        self._dirty = False
        return self.path


def settings_key(spec: TextPreprocess, vocab_sha256: str) -> str:
    """The cache key of everything that changes the ids of a text."""
    from paddleopt.config.schema import to_dict

    settings = {k: v for k, v in to_dict(spec).items() if k not in NOT_IN_KEY}
    settings["vocab_sha256"] = vocab_sha256
    if spec.use_lac:
        settings["lac_onednn"] = LAC_ONEDNN
    else:
        settings.pop("whole_word")
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
