"""Runtimes: one module per runtime behind one ``Runner`` interface, the lowest layer beside models.

Export parity, benchmarks, evaluation and prediction all open artifacts through here, so a runtime
is written once. Nothing heavy loads on import: ``open_runner`` imports a runtime when it is used.
"""

from __future__ import annotations

import lazy_loader

# Names load from their submodule on first use (PEP 562, scientific-python's lazy_loader).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "base": ["InputSpec", "Runner"],
        "registry": ["open_runner", "runner_class", "runtime_for", "read_metadata"],
        "run": ["run_artifact", "describe_artifact", "describe_runner", "open_verified", "run_batches"],
    },
)
