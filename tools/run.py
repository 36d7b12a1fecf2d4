"""`python tools/run.py ...` behaves exactly like `paddleopt run ...`."""
from _shim import run

if __name__ == "__main__":
    run("run")
