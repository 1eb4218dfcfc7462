"""A wheel of this edgecls checkout, for devices, and the digest that says which code it is.

The version number alone does not tell two checkouts apart (0.1.0 stays 0.1.0 across commits), so
a device's edgecls install is keyed by ``<version>-<digest of the package files>``: the same code
is installed once per device, a changed checkout installs beside it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from edgecls.errors import EdgeclsError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../edgecls
SOURCE_ROOT = PACKAGE_DIR.parent


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix not in (".pyc", ".pyo"))


@lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 over the package's relative paths and bytes (first 12 hex digits)."""
    digest = hashlib.sha256()
    for path in _package_files():
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def install_tag() -> str:
    from edgecls import __version__

    return f"{__version__}-{source_digest()}"


@lru_cache(maxsize=1)
def build_wheel() -> Path:
    """Build ``edgecls-<version>-py3-none-any.whl`` of this checkout into a temp folder (once per process).

    Built from a copy of the package, pyproject.toml and README, so the checkout gets no build/
    or egg-info folders. Needs setuptools (the build backend) in this interpreter.
    """
    pyproject = SOURCE_ROOT / "pyproject.toml"
    if not pyproject.is_file():
        raise EdgeclsError(
            f"edgecls at {PACKAGE_DIR} is not a source checkout (no pyproject.toml beside it): install "
            "edgecls[runtime] on the device yourself and set runtimes = \"existing\" with its python"
        )
    out = Path(tempfile.mkdtemp(prefix="edgecls-wheel-"))
    src = out / "src"
    shutil.copytree(PACKAGE_DIR, src / "edgecls", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (SOURCE_ROOT / name).is_file():
            shutil.copy2(SOURCE_ROOT / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    wheels = sorted(out.glob("edgecls-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeclsError(f"building the edgecls wheel for the device failed: {last}")
    shutil.rmtree(src, ignore_errors=True)
    return wheels[0]


def _sha256(path: Path) -> str:
    from edgecls.manifest import sha256_of

    return sha256_of(path)


def file_digest(paths: list[Path]) -> str:
    """The artifact's name on devices: sha256 of its file; with side files, sha256 of "name sha256" lines."""
    if len(paths) == 1:
        return _sha256(paths[0])
    lines = "".join(f"{p.name} {_sha256(p)}\n" for p in paths)
    return hashlib.sha256(lines.encode()).hexdigest()


def artifact_files(path: Path) -> list[Path]:
    """The artifact and the side files its runtime loads (OpenVINO .bin, ONNX external data)."""
    path = Path(path)
    suffix = path.suffix.lower()
    sides = []
    if suffix == ".xml":
        sides = [path.with_suffix(".bin")]
    elif suffix == ".onnx":
        sides = [Path(str(path) + ".data"), path.with_suffix(".data")]
    return [path] + [s for s in dict.fromkeys(sides) if s.is_file()]
