"""`python tools/export.py ...` behaves exactly like `paddleopt export ...`."""
from _shim import run

if __name__ == "__main__":
    run("export")
