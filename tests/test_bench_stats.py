"""Timing loop rules and latency statistics, driven by a fake clock so counts are exact."""

from __future__ import annotations

import math
import statistics

import pytest

from edgecls.bench.stats import TimingConfig, measure, percentile, summarize
from edgecls.errors import InvalidArgumentError

MS = 1_000_000


class FakeClock:
    """A clock that only moves when the fake inference runs."""

    def __init__(self, step_ns: int, first_ns: int | None = None) -> None:
        self.now = 0
        self.step_ns = step_ns
        self.first_ns = first_ns
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def infer(self, _prepared) -> None:
        self.now += self.first_ns if (self.calls == 0 and self.first_ns is not None) else self.step_ns
        self.calls += 1


def run(step_ms: float, first_ms: float | None = None, **config):
    clock = FakeClock(int(step_ms * MS), None if first_ms is None else int(first_ms * MS))
    timings = measure(clock.infer, None, TimingConfig(**config), clock=clock)
    return timings, clock


@pytest.mark.parametrize("ms,min_runs,min_seconds,max_seconds,runs,stopped_by", [
    (1, 50, 0.01, 60, 50, "bounds"),  # min-runs bounds fast runs
    (10, 5, 2, 60, 200, "bounds"),  # 10 ms runs: min-seconds 2 s needs 200 runs although 5 satisfy min-runs
    (100, 1000, 1, 3, 30, "max-seconds"),  # max-seconds stops timing early
], ids=["min-runs", "min-seconds", "max-seconds"])
def test_timing_bounds(ms, min_runs, min_seconds, max_seconds, runs, stopped_by):
    timings, _ = run(ms, warmup_runs=0, warmup_seconds=0, min_runs=min_runs, min_seconds=min_seconds,
                     max_seconds=max_seconds)
    assert len(timings.times_ns) == runs
    assert timings.stopped_by == stopped_by
    assert all(t == ms * MS for t in timings.times_ns)


def test_warmup_needs_both_runs_and_seconds():
    by_time, _ = run(10, warmup_runs=5, warmup_seconds=0.5, min_runs=1, min_seconds=0, max_seconds=60)
    assert by_time.warmup_runs == 50  # 0.5 s of 10 ms runs
    by_runs, _ = run(10, warmup_runs=100, warmup_seconds=0.1, min_runs=1, min_seconds=0, max_seconds=60)
    assert by_runs.warmup_runs == 100


def test_warmup_is_capped_by_max_seconds():
    timings, _ = run(1000, warmup_runs=100, warmup_seconds=0, min_runs=1, min_seconds=0, max_seconds=5)
    assert timings.warmup_runs == 5


def test_first_inference_is_timed_apart_from_warmup_and_timed_runs():
    timings, clock = run(2, first_ms=500, warmup_runs=3, warmup_seconds=0, min_runs=10, min_seconds=0, max_seconds=60)
    assert timings.first_ns == 500 * MS
    assert timings.warmup_runs == 3
    assert len(timings.times_ns) == 10 and max(timings.times_ns) == 2 * MS
    assert clock.calls == 1 + 3 + 10


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == 5  # rank ceil(5) = 5: lower middle, not the 5.5 interpolation
    assert percentile(values, 90) == 9
    assert percentile(values, 99) == 10
    assert percentile(values, 100) == 10
    assert percentile(values, 0) == 1
    hundred = [float(v) for v in range(1, 101)]
    assert percentile(hundred, 99) == 99
    assert percentile(hundred, 99.5) == 100
    assert percentile([7.0], 50) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarize_statistics():
    times = [3 * MS, 1 * MS, 2 * MS, 4 * MS, 10 * MS]
    stats = summarize(times, batch=2)
    ms = [t / MS for t in times]
    assert stats["runs"] == 5
    assert stats["p50_ms"] == 3 and stats["p90_ms"] == 10 and stats["p99_ms"] == 10
    assert stats["min_ms"] == 1 and stats["max_ms"] == 10
    assert math.isclose(stats["mean_ms"], statistics.mean(ms))
    assert math.isclose(stats["std_ms"], statistics.stdev(ms))
    assert math.isclose(stats["throughput_ips"], 2 * 1000 / statistics.mean(ms))


@pytest.mark.parametrize("kwargs, word", [
    ({"min_runs": 0}, "min-runs"),
    ({"warmup_runs": -1}, "warmup-runs"),
    ({"min_seconds": 5, "max_seconds": 1}, "min-seconds"),
    ({"max_seconds": 0, "min_seconds": 0}, "max-seconds"),
    ({"warmup_seconds": float("nan")}, "warmup-seconds"),
])
def test_bad_timing_options_raise_one_line(kwargs, word):
    with pytest.raises(InvalidArgumentError, match=word) as info:
        TimingConfig(**kwargs)
    assert "\n" not in str(info.value)
