"""Resolving what the user typed into benchmark targets: artifact files, export folders (through
their manifest, every file verified against its sha256) and model names (the PyTorch baseline)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgecls import errors
from edgecls.errors import EdgeclsError, InvalidArgumentError
from edgecls.formats import TORCH, format_of, get_format, is_artifact_path
from edgecls.manifest import Manifest, ManifestEntry, manifest_beside, read_manifest, verify_entry


@dataclass
class Target:
    """One thing to benchmark, with what is known about it before it runs."""

    label: str  # how the user named it
    format: str  # a key of edgecls.formats.FORMATS, or "torch"
    path: str | None = None  # the artifact file; None for the torch baseline
    model: str | None = None  # edgecls model name, when the manifest, metadata or user names it
    precision: str | None = None
    resolution: int | None = None
    weights: str | None = None  # torch baseline only
    manifest_entry: dict = field(default_factory=dict)  # parity, status, accuracy, macs...
    export_dir: str | None = None
    # What ``open_runner`` needs besides the path or name (the baseline: weights, resolution).
    runner_options: dict = field(default_factory=dict)

    @property
    def runtime(self) -> str:
        return get_format(self.format).runtime


def baseline_target(name: str, label: str | None = None, weights: str | None = None,
                    resolution: int | None = None) -> Target:
    """The PyTorch eager baseline of model ``name``: opened by name through ``open_runner``."""
    return Target(label=label or name, format=TORCH.name, model=name, precision="fp32", resolution=resolution,
                  weights=weights, runner_options={"weights": weights, "resolution": resolution})


def entry_target(folder: Path, entry: ManifestEntry, label: str | None = None) -> Target:
    path = folder / entry.file
    return Target(label=label or str(path), format=entry.format or format_of(path).name, path=str(path),
                  model=entry.model, precision=entry.precision, resolution=entry.resolution,
                  manifest_entry=entry.to_dict(), export_dir=str(folder))


def targets_from_manifest(folder: Path, verify: bool = True, manifest: Manifest | None = None) -> list[Target]:
    """Every passing artifact of an export folder; with ``verify``, each checked against its sha256."""
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    targets = []
    for entry in manifest.passed_entries():
        if verify:
            verify_entry(folder, entry)
        elif not (folder / entry.file).exists():
            continue
        targets.append(entry_target(folder, entry))
    if not targets:
        raise EdgeclsError(f"the manifest in {folder} lists no artifact file that exists")
    return targets


def artifact_metadata(path: Path) -> dict:
    """Model name, precision, resolution... that the artifact itself records, if any."""
    from edgecls.runtime.registry import read_metadata

    try:
        return read_metadata(path)
    except EdgeclsError:  # includes MissingDependencyError: metadata is a convenience
        return {}


def file_target(item: str, resolution: int | None = None, verify: bool = True) -> Target:
    path = Path(item)
    fmt = format_of(path)
    found = manifest_beside(path)
    if found is not None:
        if verify:
            verify_entry(path.parent, found[1])
        target = entry_target(path.parent, found[1], label=item)
        target.resolution = resolution or target.resolution
        return target
    meta = artifact_metadata(path)
    return Target(label=item, format=fmt.name, path=str(path), model=meta.get("model"),
                  precision=meta.get("precision"), resolution=resolution or meta.get("resolution"),
                  manifest_entry={"macs": meta["macs"]} if "macs" in meta else {})


def resolve_targets(items: list[str], weights: str | None = None, resolution: int | None = None,
                    verify: bool = True) -> list[Target]:
    """Targets for what the user typed: files, export folders, model names (torch eager)."""
    if not items:
        raise InvalidArgumentError("nothing to benchmark: give an artifact file, an export folder or a model name")
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise InvalidArgumentError(f"--resolution must be a positive integer, got {resolution!r}")
    targets: list[Target] = []
    for item in items:
        path = Path(item)
        if path.is_dir() and not is_artifact_path(path):  # an .mlpackage is a folder artifact, not an export folder
            targets.extend(targets_from_manifest(path, verify=verify))
            continue
        if path.exists():
            targets.append(file_target(item, resolution, verify))
            continue
        if is_artifact_path(path) or os.sep in item or "/" in item:
            raise EdgeclsError(f"artifact not found: {item}")
        from edgecls.models.registry import resolve_name

        try:
            name = resolve_name(item)  # UnknownModelError with suggestions for a typo
        except ImportError:
            raise errors.MissingDependencyError(
                f"'{item}' is not a file, and benchmarking a model name runs PyTorch: pip install 'edgecls[export]'"
            ) from None
        targets.append(baseline_target(name, item, weights, resolution))
    return targets


def parse_threads(text: str | int | list | None, cpu_count: int | None = None) -> list[int | None]:
    """'1,2' -> [1, 2]; None or '' -> [None] (the runtime's default). More threads than the
    machine has CPUs are refused: they would time the scheduler, not the runtime."""
    if text is None or text == "":
        return [None]
    from edgecls.bench.sweep import parse_positive_ints

    cpus = cpu_count or os.cpu_count() or 1
    out: list[int | None] = []
    for value in parse_positive_ints(text, f"threads must be positive integers like '1,2', got {text!r}"):
        if value > cpus:
            raise InvalidArgumentError(f"--threads {value}: this machine has {cpus} CPUs; "
                                       f"use at most {cpus} (more threads only time the scheduler)")
        out.append(value)
    return out or [None]


__all__ = ["Target", "artifact_metadata", "baseline_target", "entry_target", "file_target", "parse_threads", "resolve_targets", "targets_from_manifest"]
