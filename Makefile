# dask_kube: two commands matter. `make demo` runs the quickstart on an embedded LocalKube;
# `make test` runs lint and the whole test suite. Both build .venv from nothing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint unit demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check dask_kube tests bench deploy examples

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

test: lint
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	@echo "make demo arrives with KubeCluster (issue 5); meanwhile: $(PY) -m dask_kube.localkube --kubeconfig k.yaml"
	@exit 1

bench: $(STAMP)
	$(PY) bench/localkube_api.py
	$(PY) bench/localkube_pods.py
	$(PY) bench/operator_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
