"""Per-epoch training checkpoints inside a stage's (temporary) folder, for exact resume.

A resumed run must continue exactly where the interrupted one stopped: same weights,
optimizer and LR-scheduler state, same RNG state (the shuffle order of the next epoch and
dropout come from it) and the history of the epochs already done. So each epoch writes, into
``checkpoints/``::

    epoch_NNN.pdparams   model state
    epoch_NNN.pdopt      optimizer state (Paddle includes the LR scheduler's)
    epoch_NNN.rng        python / numpy / paddle RNG states (pickle of our own objects)
    epoch_NNN.json       epoch, history, train seconds and the sha256 of the three files
    state.json           a copy of the newest epoch_NNN.json, written last

Every file goes to a temp name first and is renamed, and the json that vouches for the
others is written after them, so a kill at any moment leaves the previous epoch usable. A
file that no longer matches its sha256 (truncated, edited) is reported, never silently
replaced by training from scratch.
"""
from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.artifact.manifest import sha256_file
from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle

PARTS = ("pdparams", "pdopt", "rng")


def rng_state() -> dict[str, Any]:
    paddle = import_paddle()
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "paddle": paddle.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    paddle = import_paddle()
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    paddle.set_rng_state(state["paddle"])


def portable_optimizer_state(state: dict[str, Any], model: Any) -> dict[str, Any]:
    """Optimizer state keyed by structured parameter names ("fc.weight_velocity_0") instead
    of Paddle's process-global ones ("linear_12.w_0_velocity_0"), which differ when the model
    is rebuilt in another order or process."""
    return _rename(state, {p.name: n for n, p in model.named_parameters()})


def local_optimizer_state(state: dict[str, Any], model: Any) -> dict[str, Any]:
    """The inverse of ``portable_optimizer_state`` for ``model``'s current parameters."""
    return _rename(state, {n: p.name for n, p in model.named_parameters()})


def _rename(state: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key in names:
            out[names[key]] = value
            continue
        # accumulator keys are "<parameter name>_<accumulator>_<n>"; take the longest match
        match = max((n for n in names if key.startswith(n + "_")), key=len, default=None)
        out[key if match is None else names[match] + key[len(match):]] = value
    return out


class EpochCheckpoints:
    """Writes and reads the per-epoch checkpoints of one training stage."""

    def __init__(self, folder: Path, keep: int = 2) -> None:
        self.folder = Path(folder) / "checkpoints"
        self.keep = max(1, keep)

    def save(self, epoch: int, model: Any, optimizer: Any, metrics: dict,
             history: list[dict] | None = None, train_seconds: float = 0.0) -> None:
        """After epoch ``epoch`` (0-based). Call it last in the epoch: the RNG state taken
        here is what the next epoch starts from."""
        paddle = import_paddle()
        if paddle.distributed.get_rank() != 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"epoch_{epoch + 1:03d}"
        digests = {}
        for part, obj in (("pdparams", model.state_dict()),
                          ("pdopt", portable_optimizer_state(optimizer.state_dict(), model)),
                          ("rng", rng_state())):
            final = self.folder / f"{stem}.{part}"
            tmp = self.folder / f"{stem}.{part}.tmp"
            if part == "rng":
                tmp.write_bytes(pickle.dumps(obj))
            else:
                paddle.save(obj, str(tmp))
            tmp.replace(final)
            digests[part] = sha256_file(final)
        state = {"epoch": epoch + 1, "metrics": metrics, "history": history or [metrics],
                 "train_seconds": train_seconds, "sha256": digests}
        text = json.dumps(state, default=float)
        for name in (f"{stem}.json", "state.json"):
            tmp = self.folder / f"{name}.tmp"
            tmp.write_text(text)
            tmp.replace(self.folder / name)
        for old in sorted(self.folder.glob("epoch_*.json"))[:-self.keep]:
            for part in (*PARTS, "json"):
                old.with_suffix(f".{part}").unlink(missing_ok=True)

    def load_last(self, model: Any) -> dict[str, Any] | None:
        """The newest complete checkpoint for ``model``: {"epoch", "model", "optimizer" (keyed
        for ``model``'s parameters), "rng", "history", "train_seconds"}; None when none was
        written. Raises a UserError when one exists but its files are truncated or
        modified."""
        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return None
        fix = (f"delete '{self.folder.parent}' to train this stage from scratch (or run "
               f"without --resume).")
        try:
            state = json.loads(state_file.read_text())
            if "epoch" in state and "sha256" not in state:
                raise UserError(
                    f"training checkpoint '{state_file}' was written by an older paddleopt "
                    f"(no RNG state, no sha256s), so the stage cannot resume exactly.", fix)
            epoch = int(state["epoch"])
            digests = dict(state["sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"training checkpoint state '{state_file}' is unreadable ({exc}).",
                            fix) from None
        stem = f"epoch_{epoch:03d}"
        paths = {part: self.folder / f"{stem}.{part}" for part in PARTS}
        for part, path in paths.items():
            if not path.is_file() or sha256_file(path) != digests.get(part):
                raise UserError(
                    f"training checkpoint '{path}' (after epoch {epoch}) is missing, truncated "
                    f"or modified: it does not match the sha256 recorded when it was saved, so "
                    f"the stage cannot resume from it.", fix)
        paddle = import_paddle()
        return {"epoch": epoch, "model": paddle.load(str(paths["pdparams"])),
                "optimizer": local_optimizer_state(paddle.load(str(paths["pdopt"])), model),
                "rng": pickle.loads(paths["rng"].read_bytes()),  # noqa: S301 - ours, verified
                "history": list(state.get("history") or []),
                "train_seconds": float(state.get("train_seconds") or 0.0)}
