# Two commands for a new user: `make demo` and `make test` (see README.md).
PY ?=
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.paddleopt-installed
PYTEST_ARGS ?=

.PHONY: demo test test-all venv lint clean bench

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	@test -x $(BIN)/python || { py=$$(PY="$(PY)" tools/find_python310.sh) && echo "creating $(VENV) with $$py" && $$py -m venv $(VENV); }
	@echo "installing paddleopt and the pinned Paddle stack into $(VENV) (about 1.5 minutes with a warm pip cache; pip is quiet meanwhile)"
	$(BIN)/python -m pip install -q "setuptools<81" wheel
	@# LAC's setup.py imports pkg_resources, so it must build without isolation.
	$(BIN)/python -m pip install -q -c constraints.txt --no-build-isolation lac==2.1.2
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all,test]"
	@touch $(STAMP)

demo: $(STAMP)
	@echo "running configs/quickstart.yaml: 2 training epochs on MNIST, export, benchmarks (minutes; see README)"
	$(BIN)/paddleopt run -c configs/quickstart.yaml --resume

# Lint first: it takes seconds and fails before a 5-minute suite does.
test: $(STAMP) lint
	$(BIN)/python -m pytest tests -m "not slow and not gpu" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/inference.py --out benchmarks/results/inference.json

lint: $(STAMP)
	$(BIN)/python -m ruff check --line-length 100 --select E,F,W,B --ignore B905,B027 \
	  paddleopt tests benchmarks tools deploy_lite examples setup.py

clean:
	rm -rf work_dirs .pytest_cache
