"""Benchmarks: the timing harness, statistics and device description (runners live in edgecls.runtime).

Submodules load on first use, so ``import edgecls.bench`` pulls in no runtime and no torch.
"""

from __future__ import annotations

import lazy_loader

# Names load from their submodule on first use (PEP 562, scientific-python's lazy_loader).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "stats": ["TimingConfig", "measure", "summarize", "percentile"],
        "harness": ["Target", "resolve_targets", "benchmark_target", "run_benchmarks"],
        "device": ["describe_device"],
    },
)
