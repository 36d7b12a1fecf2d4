"""`python tools/deploy.py ...` behaves exactly like `paddleopt deploy ...`."""
from _shim import run

if __name__ == "__main__":
    run("deploy")
