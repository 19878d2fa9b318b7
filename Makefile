# Fresh-machine entry points. `make book` builds the book from the committed results (no GPU,
# no network beyond the package registries for the first install); `make test` runs the tests.
# Each target installs what it needs into .venv first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SHARED_DATA := $(abspath ../shared/data/cifar10-jpeg.tar.gz)
export FLATNESS_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

.PHONY: setup browser book test lint bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed

# Debian's Chromium for the headless-browser checks of the book (skipped where unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: chromium missing; browser tests will be skipped"; fi; }

book: setup
	$(PY) -m flatness book

test: setup browser
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile --timeout 900

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/minimizers.py
	$(PY) benchmarks/attacks.py
	$(PY) benchmarks/sharpness.py

clean:
	rm -rf _build book/_build test-artifacts
