"""`python tools/check.py ...` behaves exactly like `paddleopt check ...`."""
from _shim import run

if __name__ == "__main__":
    run("check")
