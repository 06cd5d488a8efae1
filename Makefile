# The README's two commands: `make run` (set-up + the main job on the embedded default) and
# `make test` (set-up + the test suite). Both are idempotent: set-up reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch, installed before anything else so that no dependency resolves a CUDA build.
TORCH_SPEC ?= torch==2.13.0

# Distributions that share a Python module with another (xgboost's CUDA build and xgboost-cpu both install
# `xgboost`; onnxruntime-gpu and onnxruntime both install `onnxruntime`): two of a pair in one venv overwrite
# each other's files, and uninstalling either breaks the other. Set-up removes all four first, so that an old
# venv (which had the CUDA `xgboost`) or a `make setup-gpu` one is rebuilt with exactly one of each pair; the
# NCCL (469 MB) that only the CUDA `xgboost` needed goes too, unless something else (a CUDA torch) requires it.
SHARED_MODULE_DISTS := xgboost xgboost-cpu onnxruntime onnxruntime-gpu

.PHONY: setup setup-gpu run test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip uninstall --disable-pip-version-check -y -q $(SHARED_MODULE_DISTS) 2>/dev/null || true
	if $(BIN)/pip show nvidia-nccl-cu12 2>/dev/null | grep -q '^Required-by: *$$'; then \
		$(BIN)/pip uninstall --disable-pip-version-check -y -q nvidia-nccl-cu12; fi
	$(BIN)/pip install --disable-pip-version-check -q "$(TORCH_SPEC)"
	$(BIN)/pip install --disable-pip-version-check -q -e ".[test]"
	rm -f $(VENV)/.installed-gpu
	touch $@

# GPU extras on top of set-up: onnxruntime-gpu (--provider cuda/tensorrt) instead of onnxruntime, and xgboost's
# CUDA build instead of xgboost-cpu, swapped (never both of a pair). A later `make setup` (pyproject.toml
# changed) swaps back to the CPU builds; run `make setup-gpu` again then.
setup-gpu: $(VENV)/.installed-gpu

$(VENV)/.installed-gpu: $(VENV)/.installed
	$(BIN)/pip uninstall --disable-pip-version-check -y -q xgboost-cpu onnxruntime
	$(BIN)/pip install --disable-pip-version-check -q "xgboost>=2.0" "onnxruntime-gpu>=1.18"
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
