# edgecls: `make demo` (the main job) and `make test` build everything they need from a fresh clone.
# pyproject.toml allows Python 3.11 only (the one version constraints.txt is tested on).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two workers over 2 cores; --dist loadfile sends a whole test file to one worker in order, so each
# module-scoped fixture (an export, a training run) is built once (loadgroup interleaved files and
# rebuilt them: ~4 min of duplicate work in a 13 min run, measured 2026-12-05 on a Zen 4).
PYTEST_ARGS ?= -n 2 --dist loadfile --durations=40

.PHONY: setup test test-arm64 demo matrix bench-quick layers clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	# Debian packages the tests use: chromium renders the HTML report (tests/test_evaluate.py, headless
	# --dump-dom); a real OpenSSH server for the device tests.
	command -v chromium >/dev/null 2>&1 && test -x /usr/sbin/sshd || \
		(apt-get update -q && apt-get install -y -q chromium openssh-server)
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

# Emulated arm64 conformance (root): Debian arm64 root under qemu-user, edgecls[runtime] from a wheel,
# artifacts exported here; writes benchmarks/arm64_conformance.md. Not in `make test`: it takes far
# longer than CI's budget (see the table's timings).
test-arm64: setup
	test -x /usr/bin/qemu-aarch64-static -a -x /usr/sbin/debootstrap -a -x /usr/sbin/update-binfmts || \
		(apt-get update -q && apt-get install -y -q qemu-user-static debootstrap binfmt-support)
	$(PY) benchmarks/arm64_conformance.py

demo: setup
	$(VENV)/bin/edgecls demo

matrix: setup
	$(PY) benchmarks/export_matrix.py

bench-quick: setup
	$(VENV)/bin/edgecls suite run quick

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
