"""Export: PyTorch models to ONNX, OpenVINO IR and TFLite, each artifact checked against PyTorch.

``run_export(ExportConfig(...))`` is the pipeline behind ``edgecls export``; format modules are
named in the ``converter`` column of ``edgecls.formats.FORMATS``. Nothing heavy loads on import.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "ExportConfig": "edgecls.export.pipeline",
    "ExportRun": "edgecls.export.pipeline",
    "run_export": "edgecls.export.pipeline",
    "exporter_class": "edgecls.export.registry",
    "load_profile": "edgecls.export.profiles",
    "load_image_sets": "edgecls.export.calibration",
    "compare": "edgecls.export.parity",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecls.export' has no attribute {name!r}")
