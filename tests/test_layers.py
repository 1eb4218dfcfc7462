"""The layering contract of pyproject.toml ([tool.importlinter]) holds, checked by import-linter.

Function-level imports count: a lower layer may not reach an upper one even lazily. A second test
breaks the contract on purpose in a copy of the package, so a contract that checks nothing (a
renamed module, a layer list gone stale) cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]' (import-linter is in the dev extra)")
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=root, env=env, timeout=300)


def test_layer_contract_is_kept():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("edgecls/models/layers.py", "from edgecls.runtime import base as _upward", "edgecls layers"),
    ("edgecls/export/base.py", "import edgecls.bench.stats as _sideways", "export and bench are independent"),
])
def test_a_violation_is_caught(tmp_path, module, line, broken):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "edgecls", tmp_path / "edgecls", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n\ndef _violation():\n    {line}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "1 broken" in result.stdout or "2 broken" in result.stdout
    assert broken in result.stdout and "BROKEN" in result.stdout


def test_every_top_level_module_has_a_layer():
    """A new module or package (evaluate, predict...) must be placed in the contract, or it is unchecked."""
    import pkgutil
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip(" ()") for layer in layers for name in layer.replace("|", ":").split(":")}
    modules = {f"edgecls.{m.name}" for m in pkgutil.iter_modules([str(REPO / "edgecls")])}
    assert modules - placed == set(), "add these to [tool.importlinter] layers in pyproject.toml"
    assert placed - modules == set(), "the contract names modules that no longer exist"
