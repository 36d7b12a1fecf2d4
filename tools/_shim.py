"""Shared body of the tools/*.py scripts: each one is `paddleopt <command>` run from a checkout."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(command: str) -> None:
    from paddleopt.cli.main import main

    sys.exit(main([command, *sys.argv[1:]]))
