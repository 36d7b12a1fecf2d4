"""`python tools/bench.py ...` behaves exactly like `paddleopt bench ...`."""
from _shim import run

if __name__ == "__main__":
    run("bench")
