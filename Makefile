# Two set-up commands: `make demo` and `make test`. Everything installs into .venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint install clean gpu-wheels gpu-ray-wheels gpu-dry-run

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || { echo "need $(PY) (set PY=python3.x)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	# torch first (a GPU machine keeps its own if it satisfies the range), then DeepSpeed against it.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/python -c "import deepspeed" 2>/dev/null || DS_BUILD_OPS=0 $(BIN)/pip install -q --no-build-isolation -c constraints.txt deepspeed
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/clip-pipeline demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -m "not gpu"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/lint-imports

# The GPU kit (BENCHMARKS.md, GPU section): wheels to carry, and its rehearsal on this CPU machine.
gpu-wheels:
	PY=$(PY) bash benchmarks/gpu_wheels.sh

gpu-ray-wheels:
	PY=$(PY) bash benchmarks/gpu_ray_wheels.sh

gpu-dry-run: $(STAMP)
	PY=$(BIN)/python bash benchmarks/gpu_check.sh --cpu-dry-run

clean:
	rm -rf $(VENV) .pytest_cache out
