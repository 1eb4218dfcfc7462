"""Runtime registry: which runner opens which artifact file."""

from __future__ import annotations

import importlib
from pathlib import Path

from edgecls.errors import EdgeclsError, MissingDependencyError

# One line per runtime module, in order of preference for a suffix that several open.
RUNTIME_MODULES = {
    "onnxruntime": "edgecls.runtime.onnxruntime",
    "openvino": "edgecls.runtime.openvino",
    "litert": "edgecls.runtime.litert",
    "executorch": "edgecls.runtime.executorch",
    "ncnn": "edgecls.runtime.ncnn",
    "coreml": "edgecls.runtime.coreml",
    "torch": "edgecls.runtime.torch",
}

# Artifacts that are a folder, not a file (Core ML's ML package).
FOLDER_SUFFIXES = (".mlpackage",)
SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".xml": "openvino", ".tflite": "litert",
                  ".pte": "executorch", ".param": "ncnn",
                  ".mlpackage": "coreml"}


def runner_class(runtime: str):
    if runtime not in RUNTIME_MODULES:
        raise EdgeclsError(f"unknown runtime '{runtime}': use one of {', '.join(RUNTIME_MODULES)}")
    module = importlib.import_module(RUNTIME_MODULES[runtime])
    return module.RUNNER


def runtime_for(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_RUNTIME:
        raise EdgeclsError(
            f"cannot tell the format of {path}: expected one of {', '.join(SUFFIX_RUNTIME)}"
        )
    return SUFFIX_RUNTIME[suffix]


def open_runner(path: Path, threads: int | None = None, runtime: str | None = None):
    """A ready runner for the artifact at ``path`` (runtime from the suffix unless given)."""
    path = Path(path)
    if not (path.is_file() or (path.is_dir() and path.suffix.lower() in FOLDER_SUFFIXES)):
        raise EdgeclsError(f"artifact not found: {path}")
    cls = runner_class(runtime or runtime_for(path))
    return cls(path, threads=threads)


__all__ = ["RUNTIME_MODULES", "SUFFIX_RUNTIME", "MissingDependencyError", "open_runner", "runner_class", "runtime_for"]
