"""`python tools/doctor.py ...` behaves exactly like `paddleopt doctor ...`."""
from _shim import run

if __name__ == "__main__":
    run("doctor")
