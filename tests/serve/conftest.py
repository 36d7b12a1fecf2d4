"""Fixtures: the tiny inference artifact served by a real uvicorn on an ephemeral loopback port."""
from __future__ import annotations

import json
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


def garbage_model(src: Path, dst: Path) -> Path:
    """model.pdmodel replaced by random bytes, digests recomputed: verify() passes."""
    from paddleopt.artifact import Artifact

    copy_artifact(src, dst)
    art = Artifact.open(dst)
    art.file("model").write_bytes(np.random.default_rng(0).bytes(4096))
    art.manifest.save(dst)
    return dst


def no_digests(src: Path, dst: Path) -> Path:
    """Params corrupted and the manifest's file_digests key deleted."""
    from paddleopt.artifact import Artifact

    copy_artifact(src, dst)
    params = Artifact.open(dst).file("params")
    data = bytearray(params.read_bytes())
    data[-64:] = np.random.default_rng(1).bytes(64)
    params.write_bytes(bytes(data))
    manifest = json.loads((dst / "manifest.json").read_text())
    del manifest["file_digests"]
    (dst / "manifest.json").write_text(json.dumps(manifest))
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
