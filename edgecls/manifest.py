"""manifest.json: what an export folder holds, and the proof that its files are the ones exported.

One reader and one writer for every command that touches an export folder (export, bench, suite,
info). The schema is versioned; each artifact is one ``ManifestEntry``. Writes are atomic (a temp
file in the same folder, fsync, rename) and serialised by an exclusive ``fcntl.flock`` on
``.manifest.lock``, so two exports into one folder merge their entries instead of one run's
rename dropping the other's. ``verify_entry`` checks the artifact and its side files against the
recorded sha256 before anything loads them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from edgecls.errors import EdgeclsError

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".manifest.lock"
SCHEMA_VERSION = 2  # 1: the untyped manifests of edgecls <= 0.x (no schema key); read the same way
PASSED = "passed"
FAILED = "failed"
# An artifact written and kept that could not be verified here (Core ML off macOS, bf16 on a CPU
# without bf16 arithmetic; ``unverified_reason`` says which): no parity was measured, so bench and
# reports never count it as passed. Manifests before bf16 wrote the Core ML wording, read as the same.
UNVERIFIED = "converted, not verified"
_OLD_UNVERIFIED = ("converted, not verified: needs macOS",)


class ArtifactMismatchError(EdgeclsError):
    """An artifact (or side file) whose bytes are not the ones its manifest recorded."""


@dataclass
class FileRecord:
    file: str
    sha256: str
    size_bytes: int


@dataclass
class ManifestEntry:
    """One artifact of an export folder (or one failed attempt at one)."""

    format: str
    precision: str
    status: str  # PASSED, FAILED or UNVERIFIED
    file: str | None = None  # None when no file is published (failed and nothing older kept)
    intended_file: str | None = None  # the name a failed build would have had
    error: str | None = None
    unverified_reason: str | None = None  # why an UNVERIFIED artifact was not run
    model: str | None = None
    weights: str | None = None  # "random", "pretrained", "file:NAME"
    num_classes: int | None = None
    classes: list[str] | None = None  # class names of a fine-tuned head (`edgecls train`); ImageNet when None
    batch: int | None = None  # static batch of the artifact's input (None: dynamic, or not recorded)
    dynamic_batch: bool = False
    params: int | None = None  # of the PyTorch model, counted at export time
    macs: int | None = None  # per image at the export resolution (conv + linear + matmul)
    input: dict | None = None  # name, shape, dtype, layout as the runtime reported them
    # resolution, mean, std, crop_pct, interpolation, layout, input_type ("uint8": RGB bytes in)...
    preprocessing: dict | None = None
    parity: dict | None = None
    parity_rule: dict | None = None
    parity_data: dict | None = None  # names of the parity inputs and PyTorch outputs kept beside the manifest
    parity_inputs: dict | None = None  # which images parity was checked on (source, kind, count, in words)
    calibration: dict | None = None
    benchmark_only: bool = False  # random weights: the latency is real, the decisions are not
    accuracy_budget: dict | None = None  # int8 tuned to a budget: layers kept float, metric, latency cost
    runtime: str | None = None
    # the precision the runtime reported computing in after loading the artifact (OpenVINO's
    # INFERENCE_PRECISION_HINT read back: fp32 for its fp32/fp16/int8 IRs, bf16 for bf16); None: not reported
    execution_precision: str | None = None
    tools: dict = field(default_factory=dict)
    target: str | None = None
    settings: dict | None = None
    seconds: dict = field(default_factory=dict)
    created: str | None = None
    sha256: str | None = None
    # Of the model's files (edgecls.formats.Format.model_files: OpenVINO's .xml + .bin, NCNN's
    # .param + .bin; not a metadata sidecar); each side file's own size is in side_files.
    size_bytes: int | None = None
    side_files: list[FileRecord] = field(default_factory=list)
    # The latest failed rebuild of a passing artifact: the older file and its entry stay.
    last_attempt: dict | None = None
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as they were

    @property
    def key(self) -> str | None:
        """What identifies the artifact in its folder: the file name, built or intended."""
        return self.file or self.intended_file

    @property
    def passed(self) -> bool:
        return self.status in (PASSED, "ok") and bool(self.file)

    @property
    def published(self) -> bool:
        """Its file is in the folder: passed, or converted but not verifiable here."""
        return (self.passed or self.status == UNVERIFIED) and bool(self.file)

    @property
    def resolution(self) -> int | None:
        value = (self.preprocessing or {}).get("resolution")
        return value if isinstance(value, int) else None

    @classmethod
    def from_dict(cls, data: dict) -> "ManifestEntry":
        known = {f.name for f in fields(cls)} - {"extra", "side_files"}
        values = {k: v for k, v in data.items() if k in known}
        values["side_files"] = [FileRecord(**s) for s in data.get("side_files") or [] if isinstance(s, dict)]
        values.setdefault("format", "")
        values.setdefault("precision", "")
        values.setdefault("status", "failed")
        if values["status"] in _OLD_UNVERIFIED:
            values["status"] = UNVERIFIED
        extra = {k: v for k, v in data.items() if k not in known and k != "side_files"}
        return cls(**values, extra=extra)

    def to_dict(self) -> dict:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra}


@dataclass
class Manifest:
    folder: Path
    entries: list[ManifestEntry] = field(default_factory=list)
    schema: int = SCHEMA_VERSION
    edgecls_version: str | None = None
    updated: str | None = None

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def find(self, format: str, precision: str, *, model: str | None = None, resolution: int | None = None,
             batch: int | None = None, layout: str | None = None, passed: bool = True) -> ManifestEntry | None:
        """The latest entry of ``format`` x ``precision``, narrowed by whatever else is given (a
        folder may hold several models, resolutions, batch sizes), passing ones only unless
        ``passed`` is False."""
        for entry in reversed(self.entries):
            if entry.format != format or entry.precision != precision:
                continue
            if model is not None and entry.model not in (model, None):
                continue
            if resolution is not None and entry.resolution not in (resolution, None):
                continue
            if batch is not None and (entry.dynamic_batch or entry.batch not in (batch, None)):
                continue
            if layout is not None and (entry.preprocessing or {}).get("layout", layout) != layout:
                continue
            if passed and not entry.passed:
                continue
            return entry
        return None

    def entry_for_file(self, name: str) -> ManifestEntry | None:
        return next((e for e in reversed(self.entries) if e.file == name), None)

    def passed_entries(self) -> list[ManifestEntry]:
        return [e for e in self.entries if e.passed]

    def to_dict(self) -> dict:
        return {"schema": self.schema, "edgecls_version": self.edgecls_version, "updated": self.updated,
                "artifacts": [e.to_dict() for e in self.entries]}


# -- reading -----------------------------------------------------------------------------------


def read_manifest(folder: Path, missing_ok: bool = False) -> Manifest:
    """The manifest of an export folder; an EdgeclsError when it is absent or unreadable."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        if missing_ok:
            return Manifest(folder)
        raise EdgeclsError(f"{folder} has no {MANIFEST_NAME}: pass artifact files, or an export folder")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EdgeclsError(f"{path} is not valid JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), list):
        raise EdgeclsError(f"{path} has no 'artifacts' list: is it an edgecls export folder?")
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise EdgeclsError(f"{path} has manifest schema {schema!r}; this edgecls reads up to {SCHEMA_VERSION}: "
                           "upgrade edgecls")
    entries = [ManifestEntry.from_dict(e) for e in data["artifacts"] if isinstance(e, dict)]
    return Manifest(folder, entries, SCHEMA_VERSION, data.get("edgecls_version"), data.get("updated"))


def manifest_beside(path: Path) -> tuple[Manifest, ManifestEntry] | None:
    """(manifest, entry) when the artifact at ``path`` is listed by the manifest of its folder."""
    path = Path(path)
    if not (path.parent / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = read_manifest(path.parent)
    except EdgeclsError:
        return None
    entry = manifest.entry_for_file(path.name)
    return (manifest, entry) if entry else None


# -- verifying ---------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    """A file's sha256; for a folder artifact (Core ML's .mlpackage) the sha256 over every file in it,
    sorted by relative path, each as its path, a NUL byte and its contents' sha256."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for member in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(member.relative_to(path).as_posix().encode() + b"\0" + sha256_of(member).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file in a folder artifact."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def remove_artifact_file(path: Path) -> None:
    """Remove a file or a folder artifact (absent is fine)."""
    import shutil

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def verify_entry(folder: Path, entry: ManifestEntry) -> None:
    """Refuse (one line) an artifact or side file whose bytes differ from the manifest's record."""
    folder = Path(folder)
    if not entry.file:
        raise ArtifactMismatchError(f"{folder / MANIFEST_NAME} lists no published file for {entry.format} "
                                    f"{entry.precision}")
    records = [FileRecord(entry.file, entry.sha256 or "", entry.size_bytes or 0), *entry.side_files]
    for record in records:
        path = folder / record.file
        if not record.sha256:
            raise ArtifactMismatchError(f"{path}: {MANIFEST_NAME} records no sha256 for it, so it cannot be "
                                        "verified: re-export it, or pass --no-verify")
        if not path.exists():
            raise ArtifactMismatchError(f"{path} is listed in {MANIFEST_NAME} but missing: re-export it")
        if sha256_of(path) != record.sha256:
            raise ArtifactMismatchError(f"{path} does not match the sha256 in {MANIFEST_NAME} (modified or "
                                        "damaged since export): re-export it, or pass --no-verify")


def verify_artifact(path: Path) -> ManifestEntry | None:
    """Verify ``path`` when its folder's manifest lists it; its entry, or None when unlisted."""
    found = manifest_beside(path)
    if found is None:
        return None
    verify_entry(Path(path).parent, found[1])
    return found[1]


# -- writing -----------------------------------------------------------------------------------


def describe_os_error(exc: OSError, path: Path | str | None = None) -> str:
    """'PATH: No space left on device': the path and the cause, one line."""
    where = exc.filename or path or "?"
    cause = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None) or str(exc)
    return f"{where}: {cause}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` so that a reader sees the old file or the whole new one, never a part; on
    any error the old file is untouched and the temp file removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the manifest from other users of the folder
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Exclusive lock of ``folder``'s manifest across processes (released when the process dies)."""
    import fcntl

    fd = os.open(Path(folder) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def merge_entries(folder: Path, entries: list[ManifestEntry]) -> Path:
    """Add or replace ``entries`` (by file name) in ``folder``'s manifest, under the lock.

    A failed entry never replaces a passing one of the same file: that older artifact is still
    there and still good, so it keeps its entry and notes the failed attempt in ``last_attempt``.
    """
    import edgecls

    folder = Path(folder)
    with locked(folder):
        try:
            manifest = read_manifest(folder, missing_ok=True)
        except EdgeclsError:
            manifest = Manifest(folder)  # a damaged manifest is rebuilt from this run rather than blocking it
        merged = list(manifest.entries)
        for entry in entries:
            index = next((i for i, old in enumerate(merged) if old.key == entry.key), None)
            if index is None:
                merged.append(entry)
                continue
            old = merged[index]
            if not entry.published and old.published:
                old.last_attempt = {"status": entry.status, "error": entry.error, "created": entry.created}
                continue
            merged[index] = entry
        manifest.entries = merged
        manifest.schema = SCHEMA_VERSION
        manifest.edgecls_version = edgecls.__version__
        manifest.updated = _now()
        atomic_write_bytes(manifest.path, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode())
    return manifest.path


__all__ = ["FAILED", "LOCK_NAME", "MANIFEST_NAME", "PASSED", "SCHEMA_VERSION", "UNVERIFIED", "ArtifactMismatchError", "FileRecord", "Manifest",
           "ManifestEntry", "atomic_write_bytes", "describe_os_error", "locked", "manifest_beside",
           "merge_entries", "read_manifest", "remove_artifact_file", "sha256_of", "size_of", "verify_artifact", "verify_entry"]
