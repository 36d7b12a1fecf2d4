"""`paddleopt doctor`: what is installed, which extras import, what the CPU can do."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from paddleopt.utils.imports import EXTRA_MODULES, extra_import_error
from paddleopt.utils.versions import stack_versions


def collect_cpu() -> dict[str, Any]:
    """Cores this process may use, the CPU model and the ISA flags it has (one parser for
    doctor, the report and the benchmarks: paddleopt.utils.machine)."""
    from paddleopt.utils import machine

    return {"cores": machine.available_cores(), "logical_cores": os.cpu_count(),
            "model": machine.cpu_model(), "isa": machine.present_flags(machine.isa())}


def gpu_status() -> dict[str, Any]:
    status: dict[str, Any] = {"nvidia_smi": shutil.which("nvidia-smi") is not None}
    if status["nvidia_smi"]:
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            status["devices"] = [line for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.TimeoutExpired):
            status["devices"] = []
    try:
        from paddleopt.utils.imports import import_paddle

        paddle = import_paddle()
        status["paddle_compiled_with_cuda"] = bool(paddle.is_compiled_with_cuda())
        status["paddle_cuda_devices"] = paddle.device.cuda.device_count() \
            if paddle.is_compiled_with_cuda() else 0
    except Exception as exc:  # doctor must report, never crash
        status["paddle_error"] = str(exc)
    return status


def collect() -> dict[str, Any]:
    extras = {}
    for extra in EXTRA_MODULES:
        error = extra_import_error(extra)
        extras[extra] = "ok" if error is None else f"missing/broken ({error})"
    return {
        "python": sys.version.split()[0],
        "versions": stack_versions(),
        "extras": extras,
        "cpu": collect_cpu(),
        "gpu": gpu_status(),
    }


def format_report(info: dict[str, Any]) -> str:
    lines = [f"python      {info['python']}", "packages:"]
    lines += [f"  {name:<18} {version}" for name, version in info["versions"].items()]
    lines.append("extras:")
    lines += [f"  {name:<18} {state}" for name, state in info["extras"].items()]
    cpu = info["cpu"]
    lines.append(f"cpu         {cpu.get('model', '?')}, {cpu['cores']} cores available, ISA: "
                 f"{', '.join(cpu['isa']) or 'none of avx/avx2/avx512/vnni/amx'}")
    gpu = info["gpu"]
    lines.append(f"gpu         paddle built with CUDA: {gpu.get('paddle_compiled_with_cuda')}, "
                 f"devices: {gpu.get('paddle_cuda_devices', 0)}, nvidia-smi: {gpu['nvidia_smi']}")
    return "\n".join(lines)
