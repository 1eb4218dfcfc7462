"""Format registry: which module exports which format.

Like edgecls.runtime.registry, nothing heavy is imported until a format is used: listing formats and
checking a user's ``--formats`` costs nothing and works without any converter installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect

from edgecls.errors import InvalidArgumentError

# One line per format module, in the order an export run builds them (ONNX first: its fp32 graph in
# the run's workdir is there for the formats that start from it).
FORMAT_MODULES = {
    "onnx": "edgecls.export.onnx",
    "openvino": "edgecls.export.openvino",
    "tflite": "edgecls.export.tflite",
    "executorch": "edgecls.export.executorch",
    "ncnn": "edgecls.export.ncnn",
    "coreml": "edgecls.export.coreml",
}


def check_format(name: str) -> str:
    key = name.strip().lower()
    if key not in FORMAT_MODULES:
        raise InvalidArgumentError(f"unknown format '{name}': use one of {', '.join(FORMAT_MODULES)}")
    return key


def exporter_class(name: str, module_name: str | None = None):
    """The Exporter subclass of format ``name``: ``"module:Class"`` names it, a plain module gives its
    ``EXPORTER`` or the one Exporter subclass it defines."""
    from edgecls.export.base import Exporter

    spec = module_name or FORMAT_MODULES[check_format(name)]
    module_path, _, class_name = spec.partition(":")
    module = importlib.import_module(module_path)
    cls = getattr(module, class_name) if class_name else getattr(module, "EXPORTER", None)
    if cls is None:
        found = [obj for obj in vars(module).values()
                 if inspect.isclass(obj) and issubclass(obj, Exporter) and obj is not Exporter
                 and obj.__module__ == module.__name__ and not inspect.isabstract(obj)]
        if len(found) != 1:
            raise RuntimeError(f"{module.__name__} must define exactly one Exporter subclass, found {len(found)}")
        cls = found[0]
    return cls


def format_available(name: str) -> bool:
    """Whether the format's module exists in this checkout (its converter may still be missing)."""
    return importlib.util.find_spec(FORMAT_MODULES[check_format(name)].partition(":")[0]) is not None


__all__ = ["FORMAT_MODULES", "check_format", "exporter_class", "format_available"]
