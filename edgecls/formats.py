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

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# What a format offers unless its row says otherwise. bf16 is an execution precision (bf16
# arithmetic on CPUs with AVX512_BF16 / AMX / Armv8.6 BF16), not a storage one: only a runtime that
# can be told to compute in it offers it (OpenVINO: INFERENCE_PRECISION_HINT=bf16 on the fp32 IR).
STORED_PRECISIONS = ("fp32", "fp16", "int8")
# /proc/cpuinfo flags (x86 "flags", Arm "Features") of a CPU with bf16 arithmetic
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# Arm "Features" of a core with fp16 vector arithmetic (Armv8.2-A FEAT_FP16: Cortex-A55/A75 and
# later, Neoverse; not Cortex-A53/A72): where OpenVINO runs an fp16 IR in f16 (edgecls.runtime.openvino).
FP16_CPU_FLAGS = ("asimdhp",)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # of the main artifact file; "" for the PyTorch baseline, which is a model name
    runtime: str  # key of edgecls.runtime.registry.RUNTIME_MODULES
    runtime_extra: str  # pip extra that installs the runtime
    converter: str | None  # module (or "module:Class") of the Exporter; None: not exportable
    # Files that belong to the artifact, as suffixes replacing the last part of its suffix:
    # OpenVINO's x.xml -> x.bin, NCNN's x.ncnn.param -> x.ncnn.bin and x.ncnn.param.json.
    side_suffixes: tuple[str, ...] = ()
    # Those of side_suffixes that hold metadata (ExecuTorch's and NCNN's x.<suffix>.json sidecar),
    # not the model: they travel with the artifact but are not counted in its size.
    metadata_suffixes: tuple[str, ...] = ()
    # Distributions whose versions shape the artifact: recorded in every manifest entry.
    tools: tuple[str, ...] = ()
    precisions: tuple[str, ...] = STORED_PRECISIONS
    converter_extra: str = "export"
    folder: bool = False  # the artifact is a directory (Core ML's .mlpackage), hashed file by file
    # sys.platform values whose runtime can run the artifact; elsewhere it is converted but not
    # verified (edgecls.manifest.UNVERIFIED). Empty: every platform.
    runs_on: tuple[str, ...] = ()

    def runs_here(self) -> bool:
        import sys

        return not self.runs_on or sys.platform in self.runs_on

    def matches(self, path: str | Path) -> bool:
        """Whether ``path``'s name ends with this format's (possibly two-part) suffix."""
        return bool(self.suffix) and Path(path).name.lower().endswith(self.suffix)

    def side_files(self, path: Path) -> list[Path]:
        path = Path(path)
        return [path.with_suffix(s) for s in self.side_suffixes]

    def files(self, path: Path) -> list[Path]:
        """The artifact and its side files."""
        return [Path(path), *self.side_files(path)]

    def model_files(self, path: Path) -> list[Path]:
        """The files that make up the model itself: the artifact and its side files but the metadata
        sidecar (OpenVINO's .xml + .bin, NCNN's .param + .bin). Their sizes sum to the artifact's size."""
        path = Path(path)
        return [path, *(path.with_suffix(s) for s in self.side_suffixes if s not in self.metadata_suffixes)]


# In the order an export run builds them: ONNX first, its fp32 graph in the run's workdir is
# there for the formats that start from it.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("onnx", ".onnx", "onnxruntime", "runtime", "edgecls.export.onnx",
               tools=("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime")),
        Format("openvino", ".xml", "openvino", "runtime", "edgecls.export.openvino", side_suffixes=(".bin",),
               tools=("torch", "openvino", "nncf"), precisions=PRECISIONS),
        Format("tflite", ".tflite", "litert", "runtime", "edgecls.export.tflite",
               tools=("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer")),
        # No fp16: XNNPACK's fp16 needs native fp16 arithmetic (ARMv8.2+). The sidecar x.pte.json
        # holds the metadata a .pte has no slot for.
        Format("executorch", ".pte", "executorch", "executorch", "edgecls.export.executorch",
               side_suffixes=(".pte.json",), metadata_suffixes=(".pte.json",), tools=("torch", "executorch", "torchao"),
               precisions=("fp32", "int8"), converter_extra="executorch"),
        # ".ncnn.param" so the weights are x.ncnn.bin: a plain x.bin is OpenVINO's side file. No
        # int8: ncnn2table / ncnn2int8 come from no PyPI or Debian package.
        Format("ncnn", ".ncnn.param", "ncnn", "ncnn", "edgecls.export.ncnn",
               side_suffixes=(".bin", ".param.json"), metadata_suffixes=(".param.json",), tools=("torch", "pnnx", "ncnn"),
               precisions=("fp32", "fp16"), converter_extra="ncnn"),
        Format("coreml", ".mlpackage", "coreml", "coreml", "edgecls.export.coreml", tools=("torch", "coremltools"),
               converter_extra="coreml", folder=True, runs_on=("darwin",)),
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
    return any(f.matches(path) for f in FORMATS.values())


def format_of(path: str | Path) -> Format:
    """The format of an artifact file (or folder), by its suffix."""
    for fmt in FORMATS.values():
        if fmt.matches(path):
            return fmt
    raise EdgeclsError(f"cannot tell the format of {path}: expected one of {', '.join(artifact_suffixes())}")


def artifact_bytes(path: str | Path) -> int:
    """Size on disk of an artifact: its model files (Format.model_files; every file inside a folder
    artifact), the metadata sidecar left out. The manifest's ``size_bytes`` is the same sum."""
    from edgecls.manifest import size_of

    return sum(size_of(p) for p in format_of(path).model_files(Path(path)) if p.exists())


__all__ = ["BF16_CPU_FLAGS", "FP16_CPU_FLAGS", "FORMATS", "PRECISIONS", "STORED_PRECISIONS", "TORCH", "Format", "artifact_bytes", "artifact_suffixes", "check_format",
           "check_precision", "export_formats", "format_of", "get_format", "is_artifact_path"]
