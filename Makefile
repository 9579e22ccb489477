# vaegan developer commands. Every target sets up its own virtual environment first.
#   make quickstart   train the textbook VAE on offline MNIST -> outputs/mnist-vae/{model,samples.png,interpolation.png}
#                     (again: says where they are; an interrupted run resumes; OVERWRITE=1 retrains)
#   make test         the whole test suite, slow end-to-end tests included (what CI runs)
#   make test-fast    the suite without the tests marked slow
#   make lint         ruff

VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch goes in first: a plain `torch` requirement could pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: quickstart setup setup-train test test-fast lint clean

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.train-installed: pyproject.toml | $(PY)
	$(PIP) $(TORCH_PIN)
	$(PIP) -e '.[train]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.train-installed
	$(PIP) -e '.[dev]'
	touch $@

setup-train: $(VENV)/.train-installed
setup: $(VENV)/.dev-installed

# Re-runnable: a finished run is reported (not retrained), an interrupted one resumes from its last checkpoint,
# OVERWRITE=1 retrains from scratch. QUICKSTART_ARGS passes extra `vaegan train` options (the tests use it).
QUICKSTART_CONFIG ?= configs/mnist-vae.yaml
QUICKSTART_DIR ?= outputs/mnist-vae
QUICKSTART_ARGS ?=
QUICKSTART_TRAIN = $(VENV)/bin/vaegan train $(QUICKSTART_CONFIG) --output-dir $(QUICKSTART_DIR) $(QUICKSTART_ARGS)

quickstart: setup-train
	@if [ -n "$(OVERWRITE)" ]; then \
	  echo "OVERWRITE=1: training from scratch in $(QUICKSTART_DIR) (its earlier outputs are removed)."; \
	  $(QUICKSTART_TRAIN) --overwrite; \
	elif [ -f $(QUICKSTART_DIR)/training_summary.json ]; then \
	  echo "$(QUICKSTART_DIR) already holds a finished run; nothing to do (make quickstart OVERWRITE=1 retrains)."; \
	elif [ -n "$$(ls -d $(QUICKSTART_DIR)/checkpoints/step_* 2>/dev/null)" ]; then \
	  echo "$(QUICKSTART_DIR) holds an interrupted run: resuming it from its last checkpoint."; \
	  $(QUICKSTART_TRAIN) --resume latest; \
	else \
	  echo "Training $(QUICKSTART_CONFIG) into $(QUICKSTART_DIR)."; \
	  $(QUICKSTART_TRAIN) --overwrite; \
	fi
	@echo "Model: $(QUICKSTART_DIR)/model  Samples: $(QUICKSTART_DIR)/samples.png  Interpolation: $(QUICKSTART_DIR)/interpolation.png"

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests spaces benchmarks scripts

clean:
	rm -rf $(VENV) outputs test-artifacts .pytest_cache
