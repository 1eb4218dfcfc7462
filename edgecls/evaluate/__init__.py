"""Accuracy on labeled data (``evaluate``) and top-k predictions (``predict``) for models and artifacts.

Above export and bench; artifacts run through ``edgecls.runtime`` so both work without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "evaluate": "edgecls.evaluate.run",
    "resolve_targets": "edgecls.evaluate.run",
    "predict": "edgecls.evaluate.predict",
    "classification_metrics": "edgecls.evaluate.metrics",
    "compare_with_reference": "edgecls.evaluate.metrics",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecls.evaluate' has no attribute {name!r}")
