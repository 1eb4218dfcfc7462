"""The measuring child: open one artifact, prepare its input, time it, report.

Run through ``edgecls.isolation.run_isolated("edgecls.bench.measure:child_measure", spec)``: a
fresh interpreter per (artifact, threads) makes the peak RSS that artifact's own and keeps one
runtime's thread pools and caches from slowing or padding another.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgecls.bench.stats import TimingConfig, measure
from edgecls.errors import EdgeclsError, InvalidArgumentError


def peak_rss_self() -> tuple[int, str]:
    """(peak RSS of this process in bytes, where it came from).

    Linux: VmHWM of /proc/self/status, the high-water mark of this process's own address space.
    Not ru_maxrss: Linux carries the parent's high-water mark across fork/exec into ru_maxrss, so
    a child spawned by a parent holding torch would report torch's RSS as its own.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "VmHWM (/proc/self/status)"
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (peak if sys.platform == "darwin" else peak * 1024), "getrusage ru_maxrss"
    except ImportError:  # Windows
        import psutil

        return int(psutil.Process().memory_info().peak_wset), "psutil peak_wset"


def input_shape(spec, batch: int, resolution: int | None) -> tuple[int, ...]:
    shape = list(spec.shape)
    if len(shape) != 4:
        raise EdgeclsError(f"expected a 4-D image input, the artifact's input is {tuple(spec.shape)}")
    if shape[0] is None:
        shape[0] = batch
    elif shape[0] != batch:
        raise InvalidArgumentError(
            f"the artifact has a static batch of {shape[0]}, not {batch}: export with that batch or a dynamic one"
        )
    spatial = (1, 2) if spec.layout == "NHWC" else (2, 3)
    for axis in spatial:
        if shape[axis] is None:
            shape[axis] = resolution or 224
    channel_axis = 3 if spec.layout == "NHWC" else 1
    if shape[channel_axis] is None:
        shape[channel_axis] = 3
    return tuple(int(d) for d in shape)


def child_measure(spec: dict) -> dict:
    """Everything the child measures for one (target, threads, batch)."""
    import gc
    import importlib

    import numpy as np

    from edgecls.runtime.registry import open_runner, runner_class

    baseline_rss, _ = peak_rss_self()
    target, threads, batch = spec["target"], spec["threads"], spec["batch"]
    config = TimingConfig(**spec["timing"])

    t0 = time.perf_counter_ns()
    try:
        importlib.import_module(runner_class(spec["runtime"]).package)
    except ImportError:
        pass  # the runner raises MissingDependencyError naming the extra to install
    import_ns = time.perf_counter_ns() - t0

    t0 = time.perf_counter_ns()
    runner = open_runner(target["path"] or target["model"], threads=threads, runtime=spec["runtime"],
                         **spec["runner_options"])
    init_ns = time.perf_counter_ns() - t0

    input_spec = runner.input_spec
    shape = input_shape(input_spec, batch, target.get("resolution"))
    # Fixed seed: every runtime sees the same input for the same shape.
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    prepared = runner.prepare(x)
    # As timeit does: a collection pause inside a timed run measures Python, not the runtime.
    gc.collect()
    gc.disable()
    try:
        timings = measure(runner.infer, prepared, config)
    finally:
        gc.enable()
    logits = runner.to_float(runner.infer(prepared))
    peak = peak_rss_self()  # before counting MACs, which may load the graph again
    return {
        "runtime_version": runner.version(),
        "execution_precision": runner.execution_precision,
        "input": {"name": input_spec.name, "shape": list(shape), "dtype": input_spec.dtype,
                  "layout": input_spec.layout},
        "output_shape": list(np.shape(logits)),
        "output_finite": bool(np.isfinite(logits).all()),
        "import_ms": import_ns / 1e6,
        "init_ms": init_ns / 1e6,
        "first_inference_ms": timings.first_ns / 1e6,
        "warmup_runs": timings.warmup_runs,
        "warmup_ms": timings.warmup_ns / 1e6,
        "timed_seconds": timings.timed_ns / 1e9,
        "stopped_by": timings.stopped_by,
        "raw_ns": timings.times_ns,
        "baseline_rss_bytes": baseline_rss,
        "peak_rss": peak,
        "macs": runner.count_macs(),
    }


__all__ = ["child_measure", "input_shape", "peak_rss_self"]
