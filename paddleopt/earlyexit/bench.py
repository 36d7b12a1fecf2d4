"""What a benchmark row of an early-exit artifact adds: timing over distinct samples (an
early-exit model's latency depends on the input, so timing one sample repeated would
measure a single exit path), the exit histogram and the mean cost per sample."""
from __future__ import annotations

from typing import Any

import numpy as np


class Cycling:
    """Feeds each call the next batch of real samples (``run`` ignores its argument), so
    ``measure_latency`` times the mix of easy and hard inputs the data holds."""

    def __init__(self, predictor: Any, feeds: list[np.ndarray], batch: int) -> None:
        self.predictor = predictor
        n = len(feeds[0])
        self.batches = [[np.ascontiguousarray(np.take(x, range(i, i + batch), axis=0,
                                                      mode="wrap")) for x in feeds]
                        for i in range(0, n, batch)]
        self.next = 0

    def run(self, _feeds: list[np.ndarray]) -> list[np.ndarray]:
        batch = self.batches[self.next]
        self.next = (self.next + 1) % len(self.batches)
        return self.predictor.run(batch)


def row_fields(predictor: Any, artifact: Any) -> dict[str, Any]:
    """The exit histogram the predictor counted (since its last reset) and the mean cost per
    sample it implies under the artifact's cost model."""
    info = artifact.manifest.early_exit
    hist = predictor.exit_histogram()
    total = max(1, sum(hist))
    cost = info.get("cost") or {}
    per_exit = cost.get("segments") or []
    mean = (sum(h * c for h, c in zip(hist, per_exit)) / total) if per_exit else None
    single = cost.get("single_exit")
    return {"exit_histogram": hist, "thresholds": info.get("thresholds"),
            "mean_cost_per_sample": None if mean is None else round(mean, 5),
            "cost_unit": cost.get("unit"),
            "relative_cost": round(mean / single, 4) if mean is not None and single else None,
            "timed_on": "distinct evaluation samples, cycled (latency depends on the input)"}
