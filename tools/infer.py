"""`python tools/infer.py ...` behaves exactly like `paddleopt infer ...`."""
from _shim import run

if __name__ == "__main__":
    run("infer")
