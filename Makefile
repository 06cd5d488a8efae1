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

# The main job on the embedded default: scikit-learn's digits, this machine's CPU as the device.
# 1. profile the host (300 architectures, ~1 min; kept in profiles/host, skipped once there),
# 2. search the most accurate architecture under LATENCY_BUDGET (resumed, not restarted, if runs/digits exists),
# 3. export it (trained longer, checked, latency re-measured) to model.onnx, 4. evaluate the ONNX file itself.
LATENCY_BUDGET ?= 50us
RUN_DIR        ?= runs/digits
run: setup
	$(BIN)/hwnas profile --device host --space mobilenet --dataset digits --samples 300 --no-progress
	if [ -f $(RUN_DIR)/config.json ]; then $(BIN)/hwnas search --resume $(RUN_DIR); \
	else $(BIN)/hwnas search --latency-budget $(LATENCY_BUDGET) --device host --space mobilenet \
		--dataset digits --max-trainings 30 --run-dir $(RUN_DIR); fi
	if [ ! -f model.onnx ] || [ $(RUN_DIR)/result.json -nt model.onnx ]; then \
		$(BIN)/hwnas export $(RUN_DIR) -o model.onnx; fi
	$(BIN)/hwnas evaluate model.onnx

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) model.onnx model.pt .pytest_cache
