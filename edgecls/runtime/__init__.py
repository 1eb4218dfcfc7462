"""Runtimes: one module per runtime behind one ``Runner`` interface, the lowest layer beside models.

Export parity, benchmarks, evaluation and prediction all open artifacts through here, so a runtime
is written once. Nothing heavy loads on import: ``open_runner`` imports a runtime when it is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "InputSpec": "edgecls.runtime.base",
    "Runner": "edgecls.runtime.base",
    "open_runner": "edgecls.runtime.registry",
    "runner_class": "edgecls.runtime.registry",
    "runtime_for": "edgecls.runtime.registry",
    "read_metadata": "edgecls.runtime.registry",
    "run_artifact": "edgecls.runtime.run",
    "describe_artifact": "edgecls.runtime.run",
    "run_batches": "edgecls.runtime.run",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecls.runtime' has no attribute {name!r}")
