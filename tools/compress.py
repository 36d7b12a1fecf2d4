"""`python tools/compress.py ...` behaves exactly like `paddleopt compress ...` (same -c/-o flags)."""
from _shim import run

if __name__ == "__main__":
    run("compress")
