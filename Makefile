# The two commands: `make run` executes every lesson, `make test` runs the whole test suite.
# Both create .venv/ and install the project first; nothing needs installing by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# torch is installed on its own first so pip never picks a multi-GB CUDA build by accident;
# override for other platforms, e.g. `make run TORCH_SPEC="torch>=2.2"`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: install run test test-fast smoke notebooks nbval-avx2 sweep lint format typecheck release clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[batch,distributed,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	touch $(STAMP)

# Execute the lessons in order; outputs in artifacts/executed/, working files in artifacts/.
# umask 077: the executed lessons print training utterances; only their owner reads them.
# One Classifier Factory serves every lesson (each would otherwise start its own, ~4 s); it
# exits with the shell that runs them.
run: $(STAMP)
	umask 077; mkdir -p artifacts/executed
	umask 077; set -e; \
	$(BIN)/python -m helpers.factory start --data-dir artifacts/factory --exit-with-parent $$$$; \
	for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(BIN)/papermill --cwd notebooks --no-progress-bar $$nb artifacts/executed/$$(basename $$nb); \
	done
	chmod -R go-rwx artifacts/executed
	@echo "Executed notebooks: artifacts/executed/   results: artifacts/metrics.json"

PYTEST := $(OFFLINE) $(BIN)/python -m pytest -p no:cacheprovider --durations=15

# Everything: unit tests, service tests with the real SDK (in-process and on a socket), papermill
# runs, the wheel in a fresh venv, and strict nbval of the committed notebooks. The hub is forced
# offline so every machine gets the same results.
test: $(STAMP)
	$(PYTEST) tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

# The quick loop while changing code (about a minute): unit tests, the in-process service
# tests and every script's --help, without the `slow` and `network` ones.
test-fast: $(STAMP)
	$(PYTEST) tests/unit tests/service tests/smoke -m "not slow and not network"

# Every script in benchmarks/ and tools/: its --help and a tiny real run on synthetic data
# (a few minutes; `make test` runs them too).
smoke: $(STAMP)
	$(PYTEST) tests/smoke

# Re-execute every notebook in place, canonically (offline sample, defaults, fresh kernel).
notebooks: $(STAMP)
	$(OFFLINE) $(BIN)/python tools/execute_notebooks.py $(NOTEBOOKS)

# Strict nbval of the committed lessons as a CPU without AVX-512 would compute them: PyTorch's
# kernels, oneDNN, MKL, numpy and OpenBLAS limited to AVX2 (ONNX Runtime picks its kernels from
# the CPU and cannot be limited). The stored outputs must not depend on the CPU's extensions.
AVX2_ONLY := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
	OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
nbval-avx2: $(STAMP)
	$(AVX2_ONLY) $(PYTEST) notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

sweep: $(STAMP)
	$(OFFLINE) $(BIN)/python -m helpers.batch --out artifacts/sweep \
		--grid learning_rate=0.0001,0.0002 --set training_steps=20

# CI's first step (.ci/run): lint, formatting and the service's static types.
lint: $(STAMP)
	$(BIN)/ruff check helpers tests tools benchmarks notebooks
	$(BIN)/ruff format --check $(FORMAT)
	$(BIN)/mypy

# Formats the files given (default: the whole tree); review the diff before committing.
FORMAT ?= helpers tests tools benchmarks
format: $(STAMP)
	$(BIN)/ruff format $(FORMAT)
	$(BIN)/ruff check --fix --select I $(FORMAT)

# Static types of the service package, benchmarks/ and tools/ (settings in pyproject.toml,
# [tool.mypy]).
typecheck: $(STAMP)
	$(BIN)/mypy

# Tag v<version> (checks: clean tree, a CHANGELOG section, notebooks in sync) and build dist/.
release: $(STAMP)
	$(BIN)/python tools/release.py

clean:
	rm -rf artifacts
