# vaegan developer commands. Every target sets up its own virtual environment first.
#   make quickstart   train the textbook VAE on offline MNIST -> outputs/mnist-vae/{model,samples.png,interpolation.png}
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

quickstart: setup-train
	$(VENV)/bin/vaegan train configs/mnist-vae.yaml
	@echo "Model: outputs/mnist-vae/model  Samples: outputs/mnist-vae/samples.png  Interpolation: outputs/mnist-vae/interpolation.png"

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests spaces benchmarks scripts

clean:
	rm -rf $(VENV) outputs test-artifacts .pytest_cache
