"""A small closed-loop HTTP load generator for /predict (benchmarks and tests).

``concurrency`` connections each send one request, wait for the answer, send the next, until
``max_requests`` answers or ``max_seconds`` have passed. It speaks minimal HTTP/1.1 over
asyncio streams with keep-alive: a general client (httpx) costs ~10x more CPU per request,
which on a small machine would measure the client, not the server.

    python -m paddleopt.serve.loadgen http://127.0.0.1:8000 body.json --concurrency 32
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    requests: int = 0
    ok: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # transport errors and non-2xx bodies
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    versions: Counter = field(default_factory=Counter)  # model_version of the answers
    cpu_seconds: float = 0.0  # this process's CPU meanwhile: the load generator's own cost

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms or [0.0])
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        return {"requests": self.requests, "ok": self.ok, "failed": self.failed,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "seconds": round(self.seconds, 3),
                "throughput_per_s": round(self.ok / self.seconds, 1) if self.seconds else 0.0,
                "latency_ms": {"p50": round(float(p50), 3), "p90": round(float(p90), 3),
                               "p99": round(float(p99), 3)},
                "client_cpu_ms_per_request": round(self.cpu_seconds / self.requests * 1e3, 3)
                if self.requests else None,
                "versions": dict(self.versions), "errors": self.errors[:5]}


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes,
                   body: bytes) -> tuple[int, bytes]:
    writer.write(head + body)
    await writer.drain()
    header = await reader.readuntil(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    payload = await reader.readexactly(length) if length else b""
    return status, payload


async def run_load_async(url: str, body: bytes | Callable[[int], bytes], concurrency: int = 32,
                         max_requests: int = 1000, max_seconds: float = 10.0,
                         path: str = "/predict", parse_version: bool = False,
                         content_type: str = "application/json") -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = LoadResult()
    counter = iter(range(max_requests))
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + max_seconds

    def head_for(payload: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}"
                f"\r\nContent-Length: {len(payload)}\r\n\r\n").encode()

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    break
                payload = body(i) if callable(body) else body
                t0 = time.perf_counter()
                try:
                    status, answer = await _request(reader, writer, head_for(payload), payload)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.requests += 1
                    result.statuses["transport"] += 1
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.latencies_ms.append((time.perf_counter() - t0) * 1e3)
                result.requests += 1
                result.statuses[status] += 1
                if 200 <= status < 300:
                    result.ok += 1
                    if parse_version:
                        result.versions[json.loads(answer).get("model_version")] += 1
                else:
                    result.errors.append(f"{status}: {answer[:300]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    return result


def run_load(url: str, body: bytes | Callable[[int], bytes], concurrency: int = 32,
             max_requests: int = 1000, max_seconds: float = 10.0, path: str = "/predict",
             parse_version: bool = False, content_type: str = "application/json") -> LoadResult:
    """Blocking wrapper (runs its own event loop)."""
    return asyncio.run(run_load_async(url, body, concurrency, max_requests, max_seconds, path,
                                      parse_version, content_type))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body", help="file with the /predict body (JSON, or .npy bytes with "
                                     "--content-type application/x-npy)")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    with open(args.body, "rb") as fh:
        body = fh.read()
    result = run_load(args.url, body, args.concurrency, args.requests, args.seconds,
                      content_type=args.content_type)
    print(json.dumps(result.summary(), indent=2))
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
