"""`python tools/report.py ...` behaves exactly like `paddleopt report ...`."""
from _shim import run

if __name__ == "__main__":
    run("report")
