# dask_kube: two commands matter. `make demo` runs the quickstart on an embedded LocalKube;
# `make test` runs lint and the whole test suite. Both build .venv from nothing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint unit demo bench docs clean conformance soak

# dask_kube and LocalKube (./localkube, a distribution of its own), both editable from this repository.
$(STAMP): pyproject.toml localkube/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e './localkube[test,conformance]' -e '.[test,docs,local]'
	touch $(STAMP)

venv: $(STAMP)

# ruff on everything; mypy (strict, settings in pyproject.toml) on the dask_kube package.
lint: $(STAMP)
	$(VENV)/bin/ruff check dask_kube tests bench deploy examples localkube
	$(VENV)/bin/mypy

unit: $(STAMP)
	cd localkube && ../$(PY) -m pytest tests/unit -q
	$(PY) -m pytest tests/unit -q

# LocalKube's own suite (run from its folder, as its developers would), dask_kube's, then kr8s's own suite
# against LocalKube (at least 95 % must pass; `make conformance` writes the report).
test: lint
	cd localkube && ../$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) localkube/conformance/run.py --check 0.95

# kr8s's own test suite against a fresh LocalKube; regenerates docs/conformance.md (localkube/conformance/run.py).
conformance: $(STAMP)
	$(PY) localkube/conformance/run.py --report docs/conformance.md

demo: $(STAMP)
	@$(PY) -c "import numpy" 2>/dev/null || $(PY) -m pip install --quiet numpy  # the quickstart's dask array
	$(PY) examples/demo.py

bench: $(STAMP)
	$(PY) bench/localkube_api.py
	$(PY) bench/localkube_pods.py
	$(PY) bench/operator_scale.py
	$(PY) bench/port_forward.py

# The operator churning clusters for MINUTES (bench/soak.py): RSS, API requests/min, errors and leftovers.
# Not part of `make test`; docs/reliability.md records a run.
MINUTES ?= 30
soak: $(STAMP)
	$(PY) bench/soak.py --minutes $(MINUTES)

docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# dask_kube vs dask-kubernetes on one LocalKube (docs/benchmarks.md). dask-kubernetes (latest from PyPI) gets its
# own environment; the harness runs here and starts each tool's operator and client in that tool's environment.
.PHONY: bench-compare
DK_VENV := .venv-bench-dk
$(DK_VENV)/.installed: bench/compare/requirements-dk.txt
	$(PYTHON) -m venv $(DK_VENV)
	$(DK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DK_VENV)/bin/python -m pip install --quiet --upgrade -r bench/compare/requirements-dk.txt
	touch $@

# Our operator runs from an environment holding what its image installs (deploy/Dockerfile: '.[operator]'), not
# from .venv, whose test packages (kubernetes, kubernetes-asyncio) kopf would import.
OURS_VENV := .venv-bench-ours
$(OURS_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OURS_VENV)
	$(OURS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OURS_VENV)/bin/python -m pip install --quiet -e '.[operator]'
	touch $@

bench-compare: $(STAMP) $(DK_VENV)/.installed $(OURS_VENV)/.installed
	$(PY) bench/compare --dk-venv $(DK_VENV) --ours-venv $(OURS_VENV) --write-docs docs/benchmarks.md \
		$(BENCH_COMPARE_ARGS)
