"""Every test file under tests/ is collected by the default `make test` selection.

pytest's default `norecursedirs` silently skips folders such as `dist` and `build`; the
distributed tests once lived in `tests/dist/` and never ran in CI. This guard collects the
suite the way `make test` does (`pytest tests`, markers aside: `slow` and `gpu` deselect single
tests, never whole folders) and fails naming any `test_*.py` that pytest did not reach.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_test_pytest_args() -> list[str]:
    """The positional paths `make test` passes to pytest, read from the Makefile itself."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^test:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe, "Makefile has no `test:` recipe"
    line = recipe.group(1)
    assert "-m pytest" in line, f"`make test` does not run pytest: {line!r}"
    args = line.split("-m pytest", 1)[1].split()
    return [arg for arg in args if not arg.startswith(("-", '"', "$")) and
            not arg.endswith('"') and (REPO / arg).exists()]


def test_make_test_runs_the_whole_tests_folder() -> None:
    assert make_test_pytest_args() == ["tests"]


def test_every_test_file_is_collected() -> None:
    # No -m here: markers deselect tests, not files; a file must at least be reached.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = {line.split("::", 1)[0] for line in result.stdout.splitlines() if "::" in line}
    on_disk = {str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py")
               if "__pycache__" not in path.parts}
    missing = sorted(on_disk - collected)
    assert not missing, (
        f"{len(missing)} test file(s) are never collected by `make test`: {missing}. "
        "Rename the folder (pytest's norecursedirs skips dist, build, .* ...) or fix the import "
        "error `pytest --collect-only tests` shows.")
    assert any(path.startswith("tests/distributed/") for path in collected)
