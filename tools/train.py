"""`python tools/train.py ...` behaves exactly like `paddleopt train ...`."""
from _shim import run

if __name__ == "__main__":
    run("train")
