"""The one table of artifact formats and precisions.

Everything that needs to know what a format is (its file suffix, the files that travel with it,
the runtime that opens it, the pip extra of that runtime, the distributions whose versions go in
the manifest, the module that converts to it) reads this table. Adding a format is one converter
module (``edgecls/export/<format>.py``), one runtime module if it needs a new runtime, and one row
here. Nothing here imports anything heavy: the CLI, the manifest reader and a runtime-only
install all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgecls.errors import EdgeclsError, InvalidArgumentError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # of the main artifact file; "" for the PyTorch baseline, which is a model name
    runtime: str  # key of edgecls.runtime.registry.RUNTIME_MODULES
    runtime_extra: str  # pip extra that installs the runtime
    converter: str | None  # module (or "module:Class") of the Exporter; None: not exportable
    # Files that belong to the artifact, as suffixes replacing the main one (OpenVINO's weights).
    side_suffixes: tuple[str, ...] = ()
    # Distributions whose versions shape the artifact: recorded in every manifest entry.
    tools: tuple[str, ...] = ()
    precisions: tuple[str, ...] = PRECISIONS
    converter_extra: str = "export"

    def side_files(self, path: Path) -> list[Path]:
        path = Path(path)
        return [path.with_suffix(s) for s in self.side_suffixes]

    def files(self, path: Path) -> list[Path]:
        """The artifact and its side files."""
        return [Path(path), *self.side_files(path)]


# In the order an export run builds them: ONNX first, its fp32 graph in the run's workdir is
# there for the formats that start from it.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("onnx", ".onnx", "onnxruntime", "runtime", "edgecls.export.onnx",
               tools=("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime")),
        Format("openvino", ".xml", "openvino", "runtime", "edgecls.export.openvino", side_suffixes=(".bin",),
               tools=("torch", "openvino", "nncf")),
        Format("tflite", ".tflite", "litert", "runtime", "edgecls.export.tflite",
               tools=("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer")),
    )
}
# The PyTorch eager baseline: benchmarked and compared like a format, never exported.
TORCH = Format("torch", "", "torch", "export", None, precisions=("fp32",), tools=("torch",))


def export_formats() -> list[str]:
    """Formats an export run can build, in build order."""
    return [name for name, f in FORMATS.items() if f.converter]


def get_format(name: str) -> Format:
    """The row of format ``name`` (case-insensitive); the baseline is ``torch``."""
    key = str(name).strip().lower()
    if key == TORCH.name:
        return TORCH
    if key not in FORMATS:
        raise InvalidArgumentError(f"unknown format '{name}': use one of {', '.join(FORMATS)}")
    return FORMATS[key]


def check_format(name: str) -> str:
    """``name`` normalised, when it is an exportable format."""
    fmt = get_format(name)
    if not fmt.converter:
        raise InvalidArgumentError(f"format '{name}' cannot be exported: use one of {', '.join(export_formats())}")
    return fmt.name


def check_precision(name: str) -> str:
    key = str(name).strip().lower()
    if key not in PRECISIONS:
        raise InvalidArgumentError(f"unknown precision '{name}': use one of {', '.join(PRECISIONS)}")
    return key


def artifact_suffixes() -> tuple[str, ...]:
    return tuple(f.suffix for f in FORMATS.values() if f.suffix)


def is_artifact_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in artifact_suffixes()


def format_of(path: str | Path) -> Format:
    """The format of an artifact file, by its suffix."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if fmt.suffix and fmt.suffix == suffix:
            return fmt
    raise EdgeclsError(f"cannot tell the format of {path}: expected one of {', '.join(artifact_suffixes())}")


def artifact_bytes(path: str | Path) -> int:
    """Size on disk of an artifact with its side files."""
    return sum(p.stat().st_size for p in format_of(path).files(Path(path)) if p.is_file())


__all__ = ["FORMATS", "PRECISIONS", "TORCH", "Format", "artifact_bytes", "artifact_suffixes", "check_format",
           "check_precision", "export_formats", "format_of", "get_format", "is_artifact_path"]
