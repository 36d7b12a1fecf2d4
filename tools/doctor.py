"""`python tools/doctor.py ...` behaves exactly like `paddleopt doctor ...` (same -c/-o flags)."""
from _shim import run

if __name__ == "__main__":
    run("doctor")
