"""edgecls as a user gets it: a wheel built from the checkout, installed (not editable) into a fresh
venv, run from a folder outside the checkout.

The venv is made without pip and sees the dependencies of the test's own environment through a
``deps.pth`` naming its site-packages: nothing is downloaded or reinstalled, and ``.pth`` files
inside that added folder (the editable install's finder) are not executed, so ``edgecls`` itself
can only come from the wheel. The first test proves that.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = ["--threads", "1", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0"]
# Top-level entries of the checkout a wheel build does not read (caches, results, local venvs).
NOT_BUILT = {".git", ".venv", "build", "dist", "out", "tests", "benchmarks", ".pytest_cache", ".ci", "exports"}


def _copy_checkout(dest: Path) -> Path:
    """The checkout's sources, so build/ and *.egg-info never land in (or leak from) the checkout."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder).resolve() == REPO
        return {n for n in names if n == "__pycache__" or n.endswith(".egg-info") or n.startswith(".edgecls-work-")
                or (top and n in NOT_BUILT)}

    shutil.copytree(REPO, dest, symlinks=True, ignore=ignore)
    # edgecls/suites links to benchmarks/suites: the suites are package data.
    shutil.copytree(REPO / "benchmarks" / "suites", dest / "benchmarks" / "suites")
    return dest


def _run(args: list, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv folder, environment for its commands, an empty folder outside the checkout)."""
    root = tmp_path_factory.mktemp("packaging")
    src = _copy_checkout(root / "src")
    dist = root / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist,
         src], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("edgecls-*.whl")

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()
    Path(purelib, "deps.pth").write_text("\n".join(dict.fromkeys([ours["purelib"], ours["platlib"]])) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                              "-q", wheel], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", COLUMNS="200", OMP_NUM_THREADS="1")
    user = root / "user"
    user.mkdir()
    return venv, env, user


def test_edgecls_comes_from_the_wheel(installed):
    venv, env, user = installed
    probe = _run([venv / "bin" / "python", "-c",
                  "import edgecls, edgecls.resources as r; print(edgecls.__file__); "
                  "print(r.shipped_dir('edgecls.export', 'targets')); print(r.shipped_suite_dir())"], user, env)
    assert probe.returncode == 0, probe.stderr
    module, targets, suites = (Path(line) for line in probe.stdout.split())
    assert venv in module.parents and REPO not in module.resolve().parents
    assert {p.name for p in targets.glob("*.toml")} >= {"x86-avx2.toml", "x86-vnni.toml", "x86-amx.toml", "arm64.toml"}
    assert venv in targets.parents and venv in suites.parents
    # The shipped suite files are copies of the checkout's, not links back into it.
    for name in ("quick.toml", "zoo.toml"):
        assert not (suites / name).is_symlink()
        assert (suites / name).read_bytes() == (REPO / "benchmarks" / "suites" / name).read_bytes()


def test_export_and_bench_outside_the_checkout(installed):
    venv, env, user = installed
    out = user / "sq"
    export = _run(["edgecls", "export", "squeezenet1_1", "--resolution", "64", "--formats", "onnx", "--out", out],
                  user, env)
    assert export.returncode == 0, export.stdout + export.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest["artifacts"]
    assert (entry["format"], entry["precision"], entry["status"]) == ("onnx", "fp32", "passed")
    artifact = out / entry["file"]
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == entry["sha256"]
    assert entry["parity"]["min_cosine"] > 0.9999  # fp32 ONNX against PyTorch, measured by the pipeline

    results = user / "bench.json"
    bench = _run(["edgecls", "bench", out, *FAST, "--json", results], user, env)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    data = json.loads(results.read_text())
    assert not data["errors"]
    (record,) = data["results"]
    assert record["runtime"] == "onnxruntime" and record["latency"]["runs"] >= 5
    assert Path(record["target"]).resolve() == artifact.resolve()


def test_shipped_suite_by_name_writes_under_the_current_folder(installed):
    venv, env, user = installed
    probe = _run([venv / "bin" / "python", "-c",
                  "from edgecls.resources import find_suite; from edgecls.suite import load_suite; "
                  "path, base = find_suite('quick'); s = load_suite(path, check_models=False, base=base); "
                  "print(path); print(s.export_dir); print(s.results_dir)"], user, env)
    assert probe.returncode == 0, probe.stderr
    path, exports, results = (Path(line) for line in probe.stdout.split())
    assert venv in path.parents
    assert exports == user.resolve() / "benchmarks" / "exports"
    assert results == user.resolve() / "benchmarks" / "results"
    unknown = _run(["edgecls", "suite", "run", "no-such-suite"], user, env)
    assert unknown.returncode == 2 and "unknown suite 'no-such-suite'" in unknown.stderr and "quick" in unknown.stderr


@pytest.mark.parametrize("args", [
    ["models"],
    ["models", "mobilenet*", "--json"],
    ["info", "squeezenet1_1"],
    ["export", "squeezenet1_1", "--resolution", "64", "--formats", "onnx"],
    ["demo"],
], ids=lambda a: " ".join(a[:2]))
def test_runtime_only_install_says_what_to_install(installed, tmp_path, args):
    """Without torch (a package that raises ModuleNotFoundError as a machine without torch does),
    every command that needs a model prints one line naming the extra, never a traceback."""
    venv, env, user = installed
    shim = tmp_path / "shim" / "torch"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch' (blocked by the test)\", name='torch')\n")
    result = _run(["edgecls", *args], tmp_path, dict(env, PYTHONPATH=str(shim.parent)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "pip install 'edgecls[export]'" in line
    assert not (tmp_path / "out").exists()  # export and demo stopped before writing anything
