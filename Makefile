# edgecls: `make demo` (the main job) and `make test` build everything they need from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# -n auto over 2 cores; the heavy export tests are spread so the suite stays well under 30 minutes.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: setup test demo matrix bench-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	# Debian packages the tests use: a real OpenSSH server for the device tests.
	test -x /usr/sbin/sshd || (apt-get update -q && apt-get install -y -q openssh-server)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 resolves to the CPU wheel shipped on this machine kind (see constraints.txt).
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/edgecls demo

matrix: setup
	$(PY) benchmarks/export_matrix.py

bench-quick: setup
	$(VENV)/bin/edgecls suite run benchmarks/suites/quick.toml

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
