"""Fixtures: the tiny inference artifact served by a real uvicorn on an ephemeral loopback port."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest


def copy_artifact(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def truncated_artifact(src: Path, dst: Path) -> Path:
    """Params cut short, manifest digests recomputed: passes verify(), fails to load."""
    from paddleopt.artifact import Artifact

    copy_artifact(src, dst)
    art = Artifact.open(dst)
    params = art.file("params")
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    art.manifest.save(dst)
    return dst


def corrupted_artifact(src: Path, dst: Path) -> Path:
    """Params bytes flipped after the manifest was written: the digest no longer matches."""
    from paddleopt.artifact import Artifact

    copy_artifact(src, dst)
    params = Artifact.open(dst).file("params")
    data = bytearray(params.read_bytes())
    data[-16:] = bytes(16)
    params.write_bytes(bytes(data))
    return dst


def sample(rows: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, 1, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def server(tiny_inference):
    from paddleopt.serve.server import BackgroundServer, ServeConfig, Service

    service = Service(ServeConfig(port=0, max_batch_size=8, max_wait_ms=2.0, workers=2,
                                  max_request_rows=16, max_body_bytes=64 * 1024),
                      tiny_inference.path)
    with BackgroundServer(service) as srv:
        yield srv


@pytest.fixture
def client(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
