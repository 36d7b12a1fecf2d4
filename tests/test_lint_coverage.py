"""`make lint` checks every Python file of the repository: ruff silently skips folders named
like build outputs (dist/, build/, ...) and what .gitignore lists, which once hid a package."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_paths() -> list[str]:
    block = (REPO / "Makefile").read_text(encoding="utf-8").split("\nlint:", 1)[1]
    block = block.split("\n\n", 1)[0].replace("\\\n", " ")
    return [word for word in block.split() if (REPO / word).exists()]


def test_lint_sees_every_tracked_python_file():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    shown = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files",
                            *_lint_paths()], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    seen = {str(Path(line.strip()).resolve().relative_to(REPO)) for line in shown
            if line.strip().endswith(".py")}
    missing = sorted(set(tracked) - seen)
    assert not missing, f"make lint never checks: {missing[:10]}"
