"""Benchmarks: the timing harness, statistics and device description (runners live in edgecls.runtime).

Submodules load on first use, so ``import edgecls.bench`` pulls in no runtime and no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "TimingConfig": "edgecls.bench.stats",
    "measure": "edgecls.bench.stats",
    "summarize": "edgecls.bench.stats",
    "percentile": "edgecls.bench.stats",
    "Target": "edgecls.bench.harness",
    "resolve_targets": "edgecls.bench.harness",
    "benchmark_target": "edgecls.bench.harness",
    "run_benchmarks": "edgecls.bench.harness",
    "describe_device": "edgecls.bench.device",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecls.bench' has no attribute {name!r}")
