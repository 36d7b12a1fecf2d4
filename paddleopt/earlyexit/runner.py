"""Run an early-exit artifact on any backend as chained segment predictors.

Segment ``i`` maps the previous feature map to (its feature map, exit ``i``'s logits); the
runner computes the exit's confidence (max softmax) and stops a sample at the first exit whose
threshold it reaches. A batch is split by exit: the samples that stay go on, as a smaller
batch, to the next segment; each sample's output is the logits of the exit it left at.

Why chained predictors rather than one program with control flow: benchmarks/early_exit.py
measures both on the quickstart CNN (Paddle Inference, oneDNN, 1 thread, batch 1): the program
whose ``cond`` skips the rest of the network was 0.81x the single-exit model's speed, the
chain 0.99x (sub-block ops miss the main block's fusions; the conditional block has its own
overhead). See docs/EARLY_EXIT.md.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from paddleopt.deploy.base import Predictor
from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, TensorSpec

# Segment format per artifact kind, for each backend kind (the backend table decides which
# kinds a backend runs; the first kind the artifact has segments for is used).
SEGMENT_KINDS = ("inference", "onnx", "lite")


def max_probability(logits: np.ndarray) -> np.ndarray:
    """Max softmax probability per row, without forming the whole softmax."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return 1.0 / np.exp(z).sum(axis=-1)


class HostHead:
    """An exit head computed with numpy on the host: adaptive average pool to P x P, flatten,
    linear (the same arithmetic as the trained head).

    Why on the host: at batch 1 a small model's time goes largely to per-operator dispatch
    (and a layout reorder before flatten), not arithmetic; pool, flatten and fc inside the
    segment are three more operators, while numpy does the same pool + small matmul in tens
    of microseconds. ``head_runtime: model`` keeps them in the program instead.
    """

    def __init__(self, pool: int | tuple[int, int], weight: np.ndarray, bias: np.ndarray) -> None:
        self.pool = (pool, pool) if isinstance(pool, int) else tuple(pool)
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)

    def __call__(self, feature: np.ndarray) -> np.ndarray:
        n, c, h, w = feature.shape
        ph, pw = self.pool
        if h % ph == 0 and w % pw == 0:
            pooled = feature.reshape(n, c, ph, h // ph, pw, w // pw).mean(axis=(3, 5))
        else:  # adaptive bins as Paddle computes them: [floor(i*H/P), ceil((i+1)*H/P))
            pooled = np.empty((n, c, ph, pw), dtype=feature.dtype)
            for i in range(ph):
                h0, h1 = (i * h) // ph, -(-((i + 1) * h) // ph)
                for j in range(pw):
                    w0, w1 = (j * w) // pw, -(-((j + 1) * w) // pw)
                    pooled[:, :, i, j] = feature[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return pooled.reshape(n, -1) @ self.weight + self.bias


def load_heads(path: Path) -> list[HostHead]:
    """The exit heads saved by ``paddleopt.earlyexit.package`` (heads.npz)."""
    with np.load(path, allow_pickle=False) as data:
        count = len([k for k in data.files if k.startswith("weight_")])
        return [HostHead(tuple(int(v) for v in data[f"pool_{i}"]) if data[f"pool_{i}"].size > 1
                         else int(data[f"pool_{i}"][0]), data[f"weight_{i}"], data[f"bias_{i}"])
                for i in range(count)]


class ChainedPredictor(Predictor):
    """Early-exit inference over segment predictors (one per exit, plus the last)."""

    def __init__(self, segments: list[Predictor], thresholds: list[float | None],
                 backend: str, precision: str = "fp32",
                 heads: list[HostHead] | None = None) -> None:
        if len(segments) != len(thresholds) + 1:
            raise ValueError("one threshold per exit: segments = thresholds + 1")
        self.segments = segments
        self.heads = heads  # None: each exit segment returns its logits itself
        self.thresholds = list(thresholds)
        self.backend = backend
        self.precision = precision
        self._lock = threading.Lock()
        self.exit_counts = np.zeros(len(segments), dtype=np.int64)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.segments[0].inputs

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        x = feeds[0]
        n = len(x)
        if n == 1:
            return self._run_one(x)
        out: np.ndarray | None = None
        remaining = np.arange(n)
        counts = np.zeros(len(self.segments), dtype=np.int64)
        last = len(self.segments) - 1
        for i, segment in enumerate(self.segments):
            outs = segment.run([x])
            if i == last:
                logits, take = outs[0], np.ones(len(x), dtype=bool)
            else:
                feature = outs[0]
                logits = outs[1] if self.heads is None else self.heads[i](feature)
                threshold = self.thresholds[i]
                take = (np.zeros(len(x), dtype=bool) if threshold is None
                        else max_probability(logits) >= threshold)
            if out is None:
                out = np.empty((n, *logits.shape[1:]), dtype=logits.dtype)
            taken = int(take.sum())
            counts[i] = taken
            if taken == len(x):
                out[remaining] = logits
                break
            if taken:
                out[remaining[take]] = logits[take]
            keep = ~take
            x, remaining = np.ascontiguousarray(feature[keep]), remaining[keep]
        with self._lock:
            self.exit_counts += counts
        assert out is not None
        return [out]

    def _run_one(self, x: np.ndarray) -> list[np.ndarray]:
        """Batch 1: no masks or scatter, just stop at the first confident exit."""
        last = len(self.segments) - 1
        for i, segment in enumerate(self.segments):
            outs = segment.run([x])
            if i == last:
                break
            threshold = self.thresholds[i]
            logits = outs[1] if self.heads is None else self.heads[i](outs[0])
            if threshold is not None and max_probability(logits)[0] >= threshold:
                self._count(i)
                return [logits]
            x = outs[0]
        self._count(last)
        return [outs[0]]

    def _count(self, index: int) -> None:
        with self._lock:
            self.exit_counts[index] += 1

    def clone(self) -> ChainedPredictor:
        twin = ChainedPredictor([s.clone() for s in self.segments], self.thresholds,
                                self.backend, self.precision, self.heads)
        twin.exit_counts = self.exit_counts  # one histogram for the served model
        twin._lock = self._lock
        return twin

    def exit_histogram(self) -> list[int]:
        return [int(c) for c in self.exit_counts]

    def reset_counts(self) -> None:
        with self._lock:
            self.exit_counts[:] = 0

    def describe(self) -> dict[str, Any]:
        inner = self.segments[0].describe()
        return {**inner, "early_exit": {"thresholds": self.thresholds,
                                        "segments": len(self.segments),
                                        "head_runtime": "model" if self.heads is None
                                        else "host",
                                        "exit_histogram": self.exit_histogram()}}


def segment_artifacts(artifact: Artifact, kind: str) -> list[Artifact]:
    """The segment artifacts of ``kind`` an early-exit artifact holds (empty if none)."""
    from paddleopt.artifact import Artifact as _Artifact

    rels = (artifact.manifest.early_exit.get("segments") or {}).get(kind) or []
    return [_Artifact.open(Path(artifact.path) / rel) for rel in rels]


def load_chained(artifact: Artifact, backend: str | None, options: Any,
                 load: Callable[..., Predictor]) -> ChainedPredictor:
    """Load an early-exit artifact on ``backend`` (default paddle_inference); ``load`` is
    ``deploy.predictor.load_predictor`` (passed in: that module calls this one)."""
    from paddleopt.deploy.backends.table import BACKENDS, backend_kinds

    backend = backend or "paddle_inference"
    info = artifact.manifest.early_exit
    available = [k for k in SEGMENT_KINDS if (info.get("segments") or {}).get(k)]
    kinds = backend_kinds(backend) if backend in BACKENDS else ()
    kind = next((k for k in kinds if k in available), None)
    if kind is None and kinds:
        raise UserError(f"early-exit artifact {artifact.path} has segments for "
                        f"{', '.join(available) or 'nothing'}; backend '{backend}' runs "
                        f"{', '.join(kinds)}.",
                        "add the format to stages.<early_exit>.formats (onnx, lite) and "
                        "re-run, or use --backend paddle_inference.")
    artifact.verify()
    # an unknown backend name fails in ``load`` with the usual did-you-mean
    segments = [load(seg, backend, options)
                for seg in segment_artifacts(artifact, kind or available[0])]
    heads = load_heads(artifact.file("exit_heads")) if info.get("head_runtime") == "host" \
        else None
    return ChainedPredictor(segments, list(info["thresholds"]), backend,
                            segments[0].precision, heads)


def single_exit(artifact: Artifact) -> Artifact:
    """The same artifact seen as a plain model (its ``model``/``params`` files: the
    backbone's own final head), for comparisons with the early-exit run."""
    from paddleopt.artifact import Artifact as _Artifact

    manifest = artifact.manifest.derive()
    manifest.files = dict(artifact.manifest.files)
    manifest.file_digests = dict(artifact.manifest.file_digests)
    manifest.early_exit = {}
    return _Artifact(artifact.path, manifest)
