"""Machine facts, read once: the cores this process may use, the CPU model and its ISA flags.

The backends (thread defaults), the server and the distributed launcher (threads per worker),
the report, the benchmarks and ``paddleopt doctor`` all read them here, so they agree.
"""
from __future__ import annotations

import functools
import os
import platform
from typing import Any

# CPU features that decide which kernels oneDNN / ORT can use (int8 VNNI, bf16, AMX).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def available_cores() -> int:
    """Cores this process may run on (taskset / cgroup cpusets respected)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo; it describes them all."""
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            text = fh.read()
    except OSError:  # not Linux
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_model() -> str:
    return _cpuinfo()[0] or platform.processor() or platform.machine()


def isa() -> dict[str, bool]:
    """Each flag of ``ISA_FLAGS`` -> whether this CPU has it."""
    flags = _cpuinfo()[1]
    return {flag: flag in flags for flag in ISA_FLAGS}


def present_flags(isa_map: dict[str, bool] | list[str]) -> list[str]:
    """The flags a machine record has: the true keys of an ``isa`` map (older records and
    doctor's JSON: a plain list)."""
    if isinstance(isa_map, dict):
        return [flag for flag, have in isa_map.items() if have]
    return list(isa_map)


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, memory and the ISA flags that matter for kernels."""
    import psutil

    return {
        "cpu": cpu_model(),
        "cores": available_cores(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / (1 << 30), 1),
        "isa": isa(),
        "platform": platform.platform(),
    }
