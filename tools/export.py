"""`python tools/export.py ...` behaves exactly like `paddleopt export ...` (same -c/-o flags)."""
from _shim import run

if __name__ == "__main__":
    run("export")
