# edgecls: `make demo` (the main job) and `make test` build everything they need from a fresh clone.
# pyproject.toml allows Python 3.11 only (the one version constraints.txt is tested on).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# -n auto over 2 cores; the heavy export tests are spread so the suite stays well under 30 minutes.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: setup test demo matrix bench-quick layers clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	# Debian packages: chromium renders the HTML report in tests/test_evaluate.py (headless, --dump-dom).
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 resolves to the CPU wheel shipped on this machine kind (see constraints.txt).
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

# tests/test_layers.py runs the import-linter layering contract ([tool.importlinter] in pyproject.toml).
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

layers: setup
	$(VENV)/bin/lint-imports

demo: setup
	$(VENV)/bin/edgecls demo

matrix: setup
	$(PY) benchmarks/export_matrix.py

bench-quick: setup
	$(VENV)/bin/edgecls suite run quick

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
