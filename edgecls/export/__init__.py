"""Export: PyTorch models to ONNX, OpenVINO IR and TFLite, each artifact checked against PyTorch.

``run_export(ExportConfig(...))`` is the pipeline behind ``edgecls export``; format modules are
named in the ``converter`` column of ``edgecls.formats.FORMATS``. Nothing heavy loads on import.
"""

from __future__ import annotations

import lazy_loader

# Names load from their submodule on first use (PEP 562, scientific-python's lazy_loader).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "pipeline": ["ExportConfig", "ExportRun", "run_export"],
        "registry": ["exporter_class"],
        "profiles": ["load_profile"],
        "calibration": ["load_image_sets"],
        "parity": ["compare"],
    },
)
