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

.PHONY: setup setup-gpu run test docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip uninstall --disable-pip-version-check -y -q $(SHARED_MODULE_DISTS) 2>/dev/null || true
	if $(BIN)/pip show nvidia-nccl-cu12 2>/dev/null | grep -q '^Required-by: *$$'; then \
		$(BIN)/pip uninstall --disable-pip-version-check -y -q nvidia-nccl-cu12; fi
	$(BIN)/pip install --disable-pip-version-check -q "$(TORCH_SPEC)"
	$(BIN)/pip install --disable-pip-version-check -q -e ".[test,ray,openvino,mobile,mlflow,docs]"
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

# The main job on the embedded default: cluttered-digits (a digit at random position and scale among clutter on
# a 32x32 canvas, built from scikit-learn's digits; architecture matters there), this machine's CPU as the device.
# 1. profile the host (150 architectures at 1x32x32, ~45 s; kept in profiles/host, topped up, never redone),
# 2. search the most accurate architecture under LATENCY_BUDGET at a cheap fidelity (4 epochs on half the
#    training split, 12 trainings; resumed, not restarted, if RUN_DIR exists),
# 3. export it (trained on train+validation for EXPORT_EPOCHS, checked, latency re-measured) to model.onnx,
# 4. evaluate the ONNX file itself. The former default: make run DATASET=digits LATENCY_BUDGET=50us
#    SEARCH_FLAGS="--max-trainings 30" EXPORT_FLAGS= PROFILE_SAMPLES=300.
DATASET         ?= cluttered-digits
LATENCY_BUDGET  ?= 400us
PROFILE_SAMPLES ?= 150
THREADS         ?= $(shell nproc 2>/dev/null || echo 1)
SEARCH_FLAGS    ?= --epochs 4 --data-fraction 0.5 --max-trainings 12 --initial-trainings 6
EXPORT_FLAGS    ?= --epochs 6
RUN_DIR         ?= runs/$(DATASET)
run: setup
	$(BIN)/hwnas profile --device host --space mobilenet --dataset $(DATASET) --samples $(PROFILE_SAMPLES) \
		--no-progress
	if [ -f $(RUN_DIR)/config.json ]; then $(BIN)/hwnas search --resume $(RUN_DIR); \
	else $(BIN)/hwnas search --latency-budget $(LATENCY_BUDGET) --device host --space mobilenet \
		--dataset $(DATASET) $(SEARCH_FLAGS) --train-threads $(THREADS) --run-dir $(RUN_DIR); fi
	if [ ! -f model.onnx ] || [ $(RUN_DIR)/result.json -nt model.onnx ]; then \
		$(BIN)/hwnas export $(RUN_DIR) -o model.onnx $(EXPORT_FLAGS) --train-threads $(THREADS); fi
	$(BIN)/hwnas evaluate model.onnx

# One test process per core (pytest-xdist), each test file kept in one process (its module fixtures, e.g. the
# Ray cluster, are made once). `make test TEST_WORKERS=0` runs everything in this process.
TEST_WORKERS ?= auto
# ruff and mypy first (configured in pyproject.toml; a few seconds, mypy's cache in .mypy_cache), then the suite.
test: setup
	$(BIN)/ruff check hwnas tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The documentation site (mkdocs.yml, docs/): built strictly (any warning fails: a broken link, a docstring
# mkdocstrings cannot read, a figure comment without its provenance) into site/.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) model.onnx model.pt .pytest_cache .mypy_cache .ruff_cache site
