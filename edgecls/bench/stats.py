"""Timing loop and latency statistics.

Percentiles use the nearest-rank rule: for ``n`` sorted times, the p-th percentile is the value at
1-based rank ``ceil(p / 100 * n)`` (rank 1 for p = 0). It always returns a time that was actually
measured, never an interpolation between two runs, so p50 of an even count is the lower middle.

The loop takes its clock as an argument so tests can drive it with a fake clock and check the
stopping rules exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from edgecls.errors import InvalidArgumentError

PERCENTILE_RULE = "nearest-rank: value at 1-based rank ceil(p/100*n) of the sorted times"


@dataclass(frozen=True)
class TimingConfig:
    """Stopping rules of one measurement.

    Warm-up continues until both ``warmup_runs`` and ``warmup_seconds`` are met; timing continues
    until both ``min_runs`` and ``min_seconds`` are met. ``max_seconds`` is one deadline for
    warm-up and timing together (counted from the start of the warm-up), whichever bound comes
    first: ``--max-seconds 5`` means the loop stops 5 s after it started, with at least one timed
    run. (It used to cap each phase apart, so a slow model took twice the bound plus a run.)
    """

    warmup_runs: int = 5
    warmup_seconds: float = 0.5
    min_runs: int = 50
    min_seconds: float = 2.0
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("warmup_runs", "min_runs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentError(f"{name.replace('_', '-')} must be an integer >= 0, got {value!r}")
        for name in ("warmup_seconds", "min_seconds", "max_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or math.isnan(value):
                raise InvalidArgumentError(f"{name.replace('_', '-')} must be a number >= 0, got {value!r}")
        if self.min_runs < 1:
            raise InvalidArgumentError("min-runs must be at least 1")
        if self.max_seconds <= 0:
            raise InvalidArgumentError("max-seconds must be greater than 0")
        if self.min_seconds > self.max_seconds:
            raise InvalidArgumentError(
                f"min-seconds ({self.min_seconds}) must not exceed max-seconds ({self.max_seconds})"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Timings:
    """What the loop measured; every time is in nanoseconds."""

    first_ns: int  # the very first inference, before warm-up (lazy allocations, kernel selection)
    warmup_runs: int
    warmup_ns: int
    times_ns: list[int] = field(default_factory=list)
    timed_ns: int = 0  # wall time of the timed phase, loop overhead included
    stopped_by: str = "bounds"  # "bounds" (min-runs and min-seconds met) or "max-seconds"


def measure(
    infer: Callable[[Any], Any],
    prepared: Any,
    config: TimingConfig,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Timings:
    """Time ``infer(prepared)``: one first run, the warm-up, then single timed inferences."""
    t0 = clock()
    infer(prepared)
    first_ns = clock() - t0

    max_ns = int(config.max_seconds * 1e9)
    warmup_min_ns = int(config.warmup_seconds * 1e9)
    warmup_start = clock()
    deadline = warmup_start + max_ns
    warmup_runs = 0
    while True:
        now = clock()
        if warmup_runs >= config.warmup_runs and now - warmup_start >= warmup_min_ns:
            break
        if now >= deadline:
            break
        infer(prepared)
        warmup_runs += 1
    warmup_ns = clock() - warmup_start

    min_ns = int(config.min_seconds * 1e9)
    times: list[int] = []
    stopped_by = "bounds"
    start = clock()
    while True:
        before = clock()
        infer(prepared)
        after = clock()
        times.append(after - before)
        if len(times) >= config.min_runs and after - start >= min_ns:
            break
        if after >= deadline:
            stopped_by = "max-seconds"
            break
    return Timings(first_ns, warmup_runs, warmup_ns, times, clock() - start, stopped_by)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (see the module docstring)."""
    if not sorted_values:
        raise ValueError("percentile of an empty list")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {p}")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(times_ns: list[int], batch: int = 1) -> dict:
    """Latency statistics in milliseconds plus throughput in images per second.

    ``std`` is the sample standard deviation (n - 1); throughput is batch / mean latency, the
    rate one synchronous stream sustains.
    """
    if not times_ns:
        raise ValueError("no timed runs")
    ms = sorted(t / 1e6 for t in times_ns)
    n = len(ms)
    mean = math.fsum(ms) / n
    var = math.fsum((x - mean) ** 2 for x in ms) / (n - 1) if n > 1 else 0.0
    return {
        "runs": n,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": mean,
        "std_ms": math.sqrt(var),
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "throughput_ips": batch * 1000.0 / mean if mean > 0 else float("inf"),
    }
