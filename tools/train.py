"""`python tools/train.py ...` behaves exactly like `paddleopt train ...` (same -c/-o flags)."""
from _shim import run

if __name__ == "__main__":
    run("train")
