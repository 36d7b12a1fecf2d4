"""`python tools/report.py ...` behaves exactly like `paddleopt report ...` (same -c/-o flags)."""
from _shim import run

if __name__ == "__main__":
    run("report")
