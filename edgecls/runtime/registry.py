"""Runtime registry: which runner opens which artifact (the ``runtime`` column of edgecls.formats)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError, MissingDependencyError
from edgecls.formats import format_of

# One line per runtime module.
RUNTIME_MODULES = {
    "onnxruntime": "edgecls.runtime.onnxruntime",
    "openvino": "edgecls.runtime.openvino",
    "litert": "edgecls.runtime.litert",
    "executorch": "edgecls.runtime.executorch",
    "ncnn": "edgecls.runtime.ncnn",
    "coreml": "edgecls.runtime.coreml",
    "torch": "edgecls.runtime.torch",
}


def runner_class(runtime: str):
    if runtime not in RUNTIME_MODULES:
        raise EdgeclsError(f"unknown runtime '{runtime}': use one of {', '.join(RUNTIME_MODULES)}")
    module = importlib.import_module(RUNTIME_MODULES[runtime])
    return module.RUNNER


def runtime_for(path: Path) -> str:
    return format_of(path).runtime


def open_runner(path: Path | str, threads: int | None = None, runtime: str | None = None, **options: Any):
    """A ready runner for the artifact at ``path`` (runtime from the suffix unless given).

    The PyTorch baseline (``runtime="torch"``) opens a model name instead of a file and takes
    ``weights``, ``resolution`` and ``batch`` options; file runtimes take none.
    """
    runtime = runtime or runtime_for(Path(path))
    if runtime != "torch" and not Path(path).exists():  # a file, or a folder artifact (.mlpackage)
        raise EdgeclsError(f"artifact not found: {path}")
    return runner_class(runtime)(path if runtime == "torch" else Path(path), threads=threads, **options)


def _number_list(value: str) -> list[float] | None:
    try:
        parsed = json.loads(value) if value.strip().startswith("[") else [float(v) for v in value.split(",")]
        return [float(v) for v in parsed]
    except (ValueError, TypeError):
        return None


def read_metadata(path: Path) -> dict[str, Any]:
    """What the artifact itself records, in one form whatever the format: model, precision,
    resolution, layout, mean, std, crop_pct, interpolation, num_classes, labels (those present)."""
    raw = runner_class(runtime_for(Path(path))).read_metadata(Path(path))
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("model", "name"):
            meta.setdefault("model", value)
        elif key in ("resolution", "num_classes", "macs", "params") and str(value).isdigit():
            meta[key] = int(value)
        elif key in ("mean", "std"):
            numbers = _number_list(value)
            if numbers:
                meta[key] = numbers
        elif key == "labels":
            try:
                meta["labels"] = list(json.loads(value))
            except ValueError:
                pass
        elif key == "crop_pct":
            try:
                meta[key] = float(value)
            except ValueError:
                pass
        else:
            meta[key] = value
    return meta


__all__ = ["RUNTIME_MODULES", "MissingDependencyError", "open_runner", "read_metadata", "runner_class", "runtime_for"]
