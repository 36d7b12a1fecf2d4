"""The benchmark contract shared by every suite (see docs/BENCHMARKS.md).

`benchmarks/<suite>.py [--quick] --out FILE.json` measures rows side by side in one process and
writes {"suite", "machine", "rows"}; it then renders its own section of docs/BENCHMARKS.md
between `<!-- suite:NAME -->` markers (skipped with --quick, which is for tests).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROW_KEYS = ("model", "variant", "backend", "precision", "batch_size", "threads", "onednn",
            "latency_ms", "throughput_per_s", "accuracy", "size_bytes", "peak_rss_mb")


def parse_args(suite: str, doc: str, flags: dict[str, str] | None = None
               ) -> argparse.Namespace:
    """The shared options, plus ``flags`` (--name -> help) as store_true switches."""
    parser = argparse.ArgumentParser(description=doc)
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--quick", action="store_true", help="tiny version for tests (seconds)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / f"{suite}.json"))
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/BENCHMARKS.md")
    return parser.parse_args()


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ROW_KEYS if k not in row]
    if missing:
        raise ValueError(f"benchmark row lacks {missing}: {row}")
    return row


def write_results(suite: str, rows: list[dict], out: str, extra: dict | None = None) -> dict:
    from paddleopt.utils.machine import machine_info

    data = {"suite": suite,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "rows": [normalize_row(r) for r in rows], **(extra or {})}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return data


def rows_table(rows: list[dict], extra_cols: tuple[str, ...] = ()) -> list[str]:
    head = ["model", "variant", "backend", "precision", "batch", "threads", "oneDNN",
            "p50 ms", "p99 ms", "samples/s", "accuracy", "size KB", "peak RSS MB", *extra_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        onednn = "-" if r["onednn"] is None else ("on" if r["onednn"] else "off")
        cells = [r["model"], r["variant"], r["backend"], r["precision"], str(r["batch_size"]),
                 str(r["threads"] if r["threads"] is not None else "-"), onednn,
                 f"{r['latency_ms']['p50']:.3f}", f"{r['latency_ms']['p99']:.3f}",
                 f"{r['throughput_per_s']:.1f}", acc, f"{r['size_bytes'] / 1024:.1f}",
                 f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "-",
                 *[str(r.get(c, "-")) for c in extra_cols]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _isa_flags(isa: dict | list) -> str:
    """The ISA extensions the CPU has (the machine record maps every flag to true/false)."""
    from paddleopt.utils.machine import present_flags

    flags = present_flags(isa)
    return ", ".join(flags) or "no ISA flags recorded"


def render_section(suite: str, data: dict, body: Callable[[dict], list[str]],
                   command: str | None = None) -> None:
    """Replace this suite's section in docs/BENCHMARKS.md (other suites are untouched).

    ``command``: what produced it, when not ``python benchmarks/<suite>.py``."""
    doc = REPO / "docs" / "BENCHMARKS.md"
    text = doc.read_text(encoding="utf-8") if doc.is_file() else \
        "# Benchmarks\n\nEvery number here is written by a script under benchmarks/.\n"
    m = data["machine"]
    command = command or f"python benchmarks/{suite}.py"
    section = [f"<!-- suite:{suite} -->", f"## {suite}", "",
               f"`{command}` on {data['created']}: {m.get('cpu', '?')}, "
               f"{m.get('cores', '?')} cores ({_isa_flags(m.get('isa', {}))}). Shared machine: "
               f"read ratios, not absolute numbers.", "", *body(data), f"<!-- /suite:{suite} -->"]
    start, end = f"<!-- suite:{suite} -->", f"<!-- /suite:{suite} -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + "\n".join(section) + after
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    doc.write_text(text, encoding="utf-8")
    print(f"updated {doc} (section {suite})")


# -- child processes: start, time, watch memory, stop (distributed and serving suites) -------
def python_env(**extra: str) -> dict[str, str]:
    """This environment with the repository importable (plus ``extra`` variables)."""
    import os

    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **extra)


class TreeRss:
    """Peak RSS of the largest process in a process tree (a trainer, one rank, a server or
    one of its executor processes), sampled every 0.1 s in a thread::

        with TreeRss(proc.pid) as rss: ...
        rss.peak_mb
    """

    def __init__(self, pid: int) -> None:
        import threading

        self.pid, self.peak = pid, 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._halt.wait(0.1):
            try:
                procs = [root, *root.children(recursive=True)]
                self.peak = max([self.peak] + [p.memory_info().rss for p in procs
                                               if p.is_running()])
            except psutil.Error:
                continue

    def start(self) -> TreeRss:
        self._thread.start()
        return self

    def stop(self) -> float:
        self._halt.set()
        self._thread.join(2)
        return self.peak_mb

    @property
    def peak_mb(self) -> float:
        return round(self.peak / (1 << 20), 1)

    def __enter__(self) -> TreeRss:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_timed(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 1800
              ) -> tuple[str, float, float]:
    """Run ``cmd`` to completion from the repository root: (stdout+stderr, wall seconds, peak
    RSS MB of its largest process). A non-zero exit raises with the output's tail."""
    import subprocess
    import time

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env or python_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    with TreeRss(proc.pid) as rss:
        out, _ = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    return out, wall, rss.peak_mb


def start_until(cmd: list[str], marker: str, env: dict[str, str] | None = None,
                timeout: float = 180) -> tuple[Any, str, float]:
    """Start a long-running ``cmd`` and read its stdout until a line contains ``marker``
    (e.g. a server's "on http://"): (process, that line, seconds it took). Killed and
    raised when the line does not come."""
    import subprocess
    import threading
    import time

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env or python_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    timer = threading.Timer(timeout, proc.kill)  # a silent child must not block readline
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if marker in line:
                return proc, line.strip(), time.perf_counter() - started
    finally:
        timer.cancel()
    stop_process(proc)
    raise RuntimeError(f"no line with {marker!r} from {' '.join(cmd)} within {timeout:.0f} s")


def stop_process(proc: Any, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
