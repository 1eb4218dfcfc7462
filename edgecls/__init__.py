"""edgecls: image classifiers from PyTorch to phones, boards and laptops.

Heavy modules (torch and the runtimes) load on first use, so ``import edgecls`` is cheap and works
where only a runtime is installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "list_models": "edgecls.models.registry",
    "resolve_name": "edgecls.models.registry",
    "get_model_info": "edgecls.models.registry",
    "create_model": "edgecls.models",
    "load_weights": "edgecls.weights",
    "profile_model": "edgecls.profile",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecls' has no attribute {name!r}")
