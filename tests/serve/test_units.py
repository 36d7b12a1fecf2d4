"""Batcher, predictor pool and cache with fake predictors (no HTTP, no Paddle)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from paddleopt.serve.batching import DynamicBatcher
from paddleopt.serve.cache import PredictorCache, PredictorPool


class FakePredictor:
    """Doubles its input; records the batch sizes it ran; optionally slow."""

    def __init__(self, log: list, delay: float = 0.0, clonable: bool = True) -> None:
        self.log, self.delay, self.clonable = log, delay, clonable
        self.backend = "fake"

    def run(self, feeds):
        self.log.append(feeds[0].shape[0])
        time.sleep(self.delay)
        return [feeds[0] * 2, np.float32(7.0)]

    def clone(self):
        if not self.clonable:
            raise NotImplementedError
        return FakePredictor(self.log, self.delay)


class FakeVersion:
    def __init__(self, number: int, pool: PredictorPool) -> None:
        self.number, self.pool = number, pool


def test_batcher_groups_compatible_requests_and_splits_results():
    runs: list = []
    version = FakeVersion(1, PredictorPool(lambda: FakePredictor(runs, delay=0.05), size=1))
    batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=50, workers=1)
    try:
        blocker = batcher.submit(version, [np.zeros((1, 4), np.float32)])  # other shape, first
        time.sleep(0.01)
        futures = [batcher.submit(version, [np.full((rows, 3), i, np.float32)])
                   for i, rows in enumerate([1, 2, 3, 2, 4])]
        odd = batcher.submit(version, [np.zeros((1, 5), np.float32)])  # other shape: own run
        results = [f.result(10) for f in futures]
        blocker.result(10), odd.result(10)
    finally:
        batcher.close()
    for i, (res, rows) in enumerate(zip(results, [1, 2, 3, 2, 4])):
        np.testing.assert_array_equal(res.outputs[0], np.full((rows, 3), 2 * i))
        assert float(res.outputs[1]) == 7.0  # not batch-shaped: given whole to everyone
    assert max(runs) <= 8 and sum(runs) == 1 + 12 + 1
    assert results[0].batch_rows == 8 and results[0].batch_requests == 4  # 1+2+3+2 fit, 4 not


def test_batch_of_one_never_groups():
    runs: list = []
    version = FakeVersion(1, PredictorPool(lambda: FakePredictor(runs), size=2))
    batcher = DynamicBatcher(max_batch_size=1, max_wait_ms=5, workers=2)
    try:
        futures = [batcher.submit(version, [np.ones((1, 2), np.float32)]) for _ in range(20)]
        assert all(f.result(10).batch_rows == 1 for f in futures)
    finally:
        batcher.close()
    assert runs == [1] * 20


def test_a_failing_run_fails_every_request_of_its_batch():
    class Broken(FakePredictor):
        def run(self, feeds):
            raise ValueError("boom")

    version = FakeVersion(1, PredictorPool(lambda: Broken([]), size=1))
    batcher = DynamicBatcher(max_batch_size=4, max_wait_ms=1, workers=1)
    try:
        future = batcher.submit(version, [np.ones((1, 2), np.float32)])
        with pytest.raises(ValueError, match="boom"):
            future.result(10)
    finally:
        batcher.close()


def test_pool_clones_once_per_concurrent_user_and_falls_back_to_loading():
    loads = []

    def factory(clonable):
        def make():
            loads.append(1)
            return FakePredictor([], clonable=clonable)
        return make

    for clonable, expect_loads in ((True, 1), (False, 3)):
        loads.clear()
        pool = PredictorPool(factory(clonable), size=3)
        held = []
        barrier = threading.Barrier(3)

        def use(pool=pool, held=held, barrier=barrier):
            with pool.acquire() as p:
                held.append(p)
                barrier.wait(5)

        threads = [threading.Thread(target=use) for _ in range(3)]
        [t.start() for t in threads]
        [t.join(5) for t in threads]
        assert len({id(p) for p in held}) == 3 and len(loads) == expect_loads
        assert pool.stats()["created"] == 3
        pool.close()
        assert pool.closed


class FakeArtifact:
    def __init__(self, name: str) -> None:
        self.path = name
        self.kind = "inference"

    def digest(self) -> str:
        return self.path


def test_cache_loads_once_and_evicts_least_recently_used_idle_entries():
    loaded = []

    def loader(artifact, backend, options):
        loaded.append(artifact.path)
        return FakePredictor([])

    cache = PredictorCache(max_models=2, pool_size=1, loader=loader)
    a1 = cache.checkout(FakeArtifact("a"))
    a2 = cache.checkout(FakeArtifact("a"))
    assert a1 is a2 and loaded == ["a"] and cache.hits == 1
    b = cache.checkout(FakeArtifact("b"))
    c = cache.checkout(FakeArtifact("c"))  # 3 loaded, all in use: nothing evicted yet
    assert cache.stats()["loaded"] == 3
    cache.checkin(a1)
    cache.checkin(a2)  # 'a' idle and least recent: evicted now
    assert a1.evicted and a1.pool.closed and cache.stats()["loaded"] == 2
    cache.checkin(b)
    cache.checkin(c)
    assert not b.pool.closed and not c.pool.closed  # within max_models
    cache.checkout(FakeArtifact("d"))
    assert b.pool.closed and not c.pool.closed  # LRU idle one went


def test_fast_npy_reader_matches_numpy():
    import io

    from paddleopt.serve.inputs import _load_npy

    arrays = [np.random.default_rng(0).random((2, 3, 4), dtype=np.float32),
              np.asfortranarray(np.arange(15.0).reshape(3, 5)),
              np.arange(6, dtype=">i4").reshape(2, 3), np.ones(()), np.zeros((0, 4))]
    for arr in arrays:
        buf = io.BytesIO()
        np.save(buf, arr)
        got = _load_npy(buf.getvalue())
        assert got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)


def test_one_array_answer_for_a_multi_output_model_is_406():
    from paddleopt.serve.app import accepted_type, binary_answer
    from paddleopt.serve.batching import BatchResult
    from paddleopt.serve.inputs import RequestError

    result = BatchResult([np.zeros((1, 2)), np.ones((1, 3))], 1, 1, 0.0, 0.0)
    with pytest.raises(RequestError) as info:
        binary_answer("application/x-npy", ["a", "b"], result, "v1")
    assert info.value.status == 406 and "application/x-npz" in info.value.fix
    assert binary_answer("application/x-npz", ["a", "b"], result, "v1").status_code == 200
    assert accepted_type("text/html, application/x-npy;q=0.9") == "application/x-npy"
    assert accepted_type("*/*") == "application/json"
