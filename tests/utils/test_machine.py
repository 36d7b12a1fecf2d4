"""Machine facts come from one /proc/cpuinfo parser; the report prints what it records."""
from __future__ import annotations

import json
from pathlib import Path

from paddleopt.utils import machine


def test_machine_info():
    info = machine.machine_info()
    assert info["cores"] >= 1 and info["logical_cores"] >= info["cores"]
    assert set(info["isa"]) == set(machine.ISA_FLAGS)
    assert all(isinstance(v, bool) for v in info["isa"].values())
    if Path("/proc/cpuinfo").is_file():
        assert info["cpu"]
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0]
        assert info["isa"]["avx2"] == (" avx2" in flags)
    json.dumps(info)  # goes into benchmark JSON as is


def test_doctor_reports_the_same_flags_as_the_machine_record():
    from paddleopt.utils.doctor import collect_cpu

    cpu = collect_cpu()
    assert cpu["isa"] == machine.present_flags(machine.isa())
    assert cpu["cores"] == machine.available_cores()


def test_report_prints_only_the_flags_the_cpu_has():
    """report.json maps every flag to true/false; report.md used to join all the keys."""
    from paddleopt.report.render import markdown

    isa = {flag: flag in ("avx", "avx2") for flag in machine.ISA_FLAGS}
    data = {"pipeline": "p", "deployments": [], "stages": [],
            "machine": {"cpu": "Test CPU", "cores": 2, "isa": isa}}
    md = markdown(data)
    assert "flags avx, avx2." in md and "avx512f" not in md
    data["machine"]["isa"] = {flag: False for flag in machine.ISA_FLAGS}
    assert "flags none recorded." in markdown(data)
