"""`python tools/bench.py ...` behaves exactly like `paddleopt bench ...` (same -c/-o flags)."""
from _shim import run

if __name__ == "__main__":
    run("bench")
