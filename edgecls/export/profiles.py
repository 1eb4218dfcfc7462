"""Target profiles: TOML files saying what to build for a kind of device: formats, precisions,
per-format converter settings, threads to benchmark.

The shipped profiles are package data (``edgecls/export/targets/<name>.toml``), so a wheel install
finds them; a user's own ``./export/<name>.toml`` (or any FILE.toml path) takes precedence.

A profile named on the command line (``--target x86-avx2``) sets the formats and precisions of the
run; without one, the profile of this machine (``detect_target``) only supplies converter settings,
so the same command gives the same artifacts on every machine except for those settings.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError, InvalidArgumentError

PROFILE_KEYS = {"description", "formats", "precisions", "threads"}


@dataclass
class TargetProfile:
    name: str
    path: Path | None
    description: str = ""
    formats: list[str] = field(default_factory=list)
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    threads: list[int] = field(default_factory=lambda: [1])
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # format -> its settings table

    def describe(self) -> dict:
        return {"name": self.name, "file": str(self.path) if self.path else None, "threads": self.threads,
                "options": self.options}


def shipped_profile_dir() -> Path:
    """The folder of the profiles installed with edgecls (wheel or checkout alike)."""
    from edgecls.resources import shipped_dir

    return shipped_dir("edgecls.export", "targets")


def profile_dirs() -> list[Path]:
    """Where ``--target NAME`` looks: ./export (a user's own copies first), then the shipped profiles."""
    dirs = [Path.cwd() / "export", shipped_profile_dir()]
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))


def list_profiles() -> list[str]:
    return sorted({p.stem for d in profile_dirs() for p in d.glob("*.toml")})


def detect_target() -> str:
    """The shipped profile that fits this CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore").split()
    except OSError:
        flags = []
    return target_for(platform.machine(), flags)


def target_for(machine: str, flags: list[str]) -> str:
    """The shipped profile for a CPU of architecture ``machine`` with /proc/cpuinfo ``flags``."""
    if machine.lower() in ("arm64", "aarch64"):
        return "arm64"
    if {"amx_bf16", "amx_int8"} <= set(flags):
        return "x86-amx"
    return "x86-vnni" if {"avx512_vnni", "avx_vnni"} & set(flags) else "x86-avx2"


def _find(target: str) -> Path:
    candidate = Path(target)
    if candidate.suffix == ".toml" or candidate.is_file():
        if not candidate.is_file():
            raise EdgeclsError(f"target profile not found: {candidate}")
        return candidate
    for folder in profile_dirs():
        if (folder / f"{target}.toml").is_file():
            return folder / f"{target}.toml"
    raise EdgeclsError(f"unknown target '{target}': use one of {', '.join(list_profiles()) or 'none found'} "
                       "or a path to a .toml profile")


def load_profile(target: str | None = None) -> TargetProfile:
    """The profile ``target`` (a shipped name, a name in ./export or a .toml path), or this machine's profile."""
    from edgecls.formats import PRECISIONS, check_format, export_formats
    from edgecls.resources import read_toml

    known_formats = export_formats()

    name = target or detect_target()
    path = _find(name)
    data = read_toml(path, "target profile")

    def fail(what: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"target profile {path}: {what}")

    unknown = sorted(set(data) - PROFILE_KEYS - set(known_formats))
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(PROFILE_KEYS | set(known_formats)))}")
    formats = data.get("formats", list(known_formats))
    precisions = data.get("precisions", ["fp32"])
    threads = data.get("threads", [1])
    if not isinstance(formats, list) or not formats:
        raise fail("'formats' must be a non-empty list such as [\"onnx\", \"openvino\"]")
    try:
        formats = [check_format(str(f)) for f in formats]
    except InvalidArgumentError as exc:
        raise fail(str(exc)) from None
    if not isinstance(precisions, list) or not precisions or any(p not in PRECISIONS for p in precisions):
        raise fail(f"'precisions' must be a non-empty list of {', '.join(PRECISIONS)}")
    if not isinstance(threads, list) or not threads or any(not isinstance(t, int) or t < 1 for t in threads):
        raise fail("'threads' must be a list of positive integers")
    options = {}
    for fmt in known_formats:
        table = data.get(fmt, {})
        if not isinstance(table, dict):
            raise fail(f"[{fmt}] must be a table of settings")
        options[fmt] = table
    return TargetProfile(path.stem, path, str(data.get("description", "")), formats, list(precisions), threads, options)


__all__ = ["TargetProfile", "detect_target", "list_profiles", "load_profile", "profile_dirs", "shipped_profile_dir", "target_for"]
