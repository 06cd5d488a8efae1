# The README's two commands: `make run` (set-up + the main job on the embedded default) and
# `make test` (set-up + the test suite). Both are idempotent: set-up reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch, installed before anything else so that no dependency resolves a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup run test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q "$(TORCH_SPEC)"
	$(BIN)/pip install --disable-pip-version-check -q -e ".[test]"
	touch $@

# The main job on the embedded default (scikit-learn's digits, 1x8x8 inputs, 10 classes).
run: setup
	$(BIN)/hwnas spaces
	$(BIN)/hwnas sample --space mobilenet -n 3 --seed 0
	$(BIN)/hwnas inspect "$$($(BIN)/hwnas sample --space mobilenet -n 1 --seed 0)" --space mobilenet --input-shape 1x8x8
	$(BIN)/hwnas onnx "$$($(BIN)/hwnas sample --space mobilenet -n 1 --seed 0)" --space mobilenet \
		--input-shape 1x8x8 --num-classes 10 -o model.onnx

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) model.onnx .pytest_cache
