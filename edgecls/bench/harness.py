"""Benchmarks, parent side: each measurement in a fresh subprocess, the record around it.

What the user typed becomes targets in ``edgecls.bench.targets`` (export folders through their
manifest, verified); ``edgecls.bench.measure`` is the child that times one target at one thread
count, run through ``edgecls.isolation``. Why a subprocess per measurement: peak RSS is a
per-process high-water mark, and runtimes keep thread pools, allocators and caches alive once
imported. The parent adds what needs no runtime: file size, MACs, GFLOP/s, the share of the CPU's
fp32 peak, the device.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from edgecls.bench.stats import PERCENTILE_RULE, TimingConfig, summarize
from edgecls.bench.targets import Target, parse_threads, resolve_targets, targets_from_manifest
from edgecls.errors import EdgeclsError, InvalidArgumentError
from edgecls.formats import artifact_bytes
from edgecls.manifest import MANIFEST_NAME, read_manifest

SCHEMA = "edgecls-bench/1"
MANIFEST = MANIFEST_NAME
# Beyond the timing bound: interpreter start, runtime import, session creation (an OpenVINO
# compile or a torch import can take minutes on a slow board). A hang past it is killed.
LOAD_ALLOWANCE_SECONDS = 600.0


class BenchmarkCrash(RuntimeError):
    """The runtime failed in a way that is not the user's doing (a bug or a runtime crash)."""


_MACS_CACHE: dict[tuple, tuple[int | None, str | None]] = {}


def model_macs(target: Target, measured: int | None = None) -> tuple[int | None, str | None]:
    """(MACs per image, where the figure came from).

    Preference: the manifest (counted from the PyTorch model at export time); what the child
    counted (the PyTorch baseline's own model); the artifact's own graph; an ONNX sibling in its
    export folder. Never a model rebuilt here just to count it.
    """
    if target.manifest_entry.get("macs"):
        return int(target.manifest_entry["macs"]), "manifest"
    if measured:
        return int(measured), f"edgecls model {target.model} (torch profile: FlopCounterMode / 2)"
    key = (target.model, target.resolution, target.path)
    if key in _MACS_CACHE:
        return _MACS_CACHE[key]
    result: tuple[int | None, str | None] = (None, None)
    candidates = [Path(target.path)] if target.path else []
    if target.export_dir:
        try:
            manifest = read_manifest(Path(target.export_dir))
            candidates += [Path(target.export_dir) / e.file for e in manifest.passed_entries() if e.format == "onnx"]
        except EdgeclsError:
            pass
    for candidate in candidates:
        if not candidate.is_file():
            continue
        try:
            from edgecls.runtime.graph import count_artifact_macs

            counted = count_artifact_macs(candidate, batch=1, resolution=target.resolution)
        except EdgeclsError:  # includes MissingDependencyError: try the next candidate
            continue
        if counted.macs:
            result = (counted.macs_per_image, f"{candidate.suffix[1:]} graph {candidate.name}")
            break
    _MACS_CACHE[key] = result
    return result


def benchmark_target(
    target: Target,
    threads: int | None,
    batch: int = 1,
    timing: TimingConfig | None = None,
    timeout: float | None = None,
) -> dict:
    """One measurement in a fresh subprocess, returned as one result record."""
    from edgecls.bench.device import describe_device

    timing = timing or TimingConfig()
    if not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError(f"batch must be a positive integer, got {batch!r}")
    if target.path and not Path(target.path).exists():
        raise EdgeclsError(f"artifact not found: {target.path}")
    from dataclasses import asdict

    from edgecls.isolation import run_isolated

    spec = {"target": asdict(target), "runtime": target.runtime, "runner_options": target.runner_options,
            "threads": threads, "batch": batch, "timing": timing.to_dict()}
    timeout = timeout or (timing.max_seconds + LOAD_ALLOWANCE_SECONDS)
    # The 1-minute load average says how busy the machine was: a figure to read noisy numbers by.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    outcome = run_isolated("edgecls.bench.measure:child_measure", spec, timeout=timeout)
    if not outcome.ok:
        outcome.raise_for_user_error()
        if outcome.crash:
            raise BenchmarkCrash(f"benchmarking {target.label} with {target.runtime} crashed ({outcome.describe()})")
        raise BenchmarkCrash(f"benchmarking {target.label} with {target.runtime} failed: {outcome.describe()}\n"
                             f"{outcome.traceback or ''}")
    measured = outcome.value
    latency = summarize(measured["raw_ns"], batch)
    macs, macs_source = model_macs(target, measured.get("macs"))
    device = describe_device()
    peak = device.peak(threads)
    gflops = 2 * macs * batch / (latency["p50_ms"] / 1e3) / 1e9 if macs else None
    entry = target.manifest_entry
    record = {
        "target": target.label,
        "model": target.model,
        "format": target.format,
        "runtime": target.runtime,
        "precision": target.precision,
        # what the runtime computed in (OpenVINO reads its inference precision back): a bf16 IR timed
        # on a CPU without bf16 says fp32 here
        "execution_precision": measured.get("execution_precision"),
        "file": target.path,
        "file_bytes": artifact_bytes(Path(target.path)) if target.path else None,
        "threads": threads,
        "batch": batch,
        "resolution": target.resolution,
        **{k: measured[k] for k in ("runtime_version", "input", "output_shape", "output_finite", "import_ms",
                                    "init_ms", "first_inference_ms", "warmup_runs", "warmup_ms",
                                    "timed_seconds", "stopped_by")},
        "load_average_1m": load,
        "latency": latency,
        "peak_rss_bytes": measured["peak_rss"][0],
        "peak_rss_source": measured["peak_rss"][1],
        "baseline_rss_bytes": measured["baseline_rss_bytes"],
        "macs": macs,
        "macs_source": macs_source,
        "gflops": gflops,
        "fp32_peak_gflops": peak.gflops if peak else None,
        "fp32_peak_formula": peak.formula() if peak else None,
        "peak_share": gflops / peak.gflops if (gflops and peak) else None,
        "status": entry.get("status"),
        "weights": entry.get("weights"),
        "parity": entry.get("parity"),
        "accuracy": entry.get("accuracy"),
        "raw_ns": measured["raw_ns"],
    }
    return record


def new_results(timing: TimingConfig, **extra: Any) -> dict:
    from edgecls.bench.device import describe_device

    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe_device().to_dict(),
        "timing": timing.to_dict(),
        "percentile_rule": PERCENTILE_RULE,
        "gflops_rule": ("GFLOP/s = 2 x MACs x batch / p50 latency; peak share = GFLOP/s / fp32 peak of the threads "
                        "used (int8 artifacts too: their MACs count as FLOPs against the fp32 peak)"),
        **extra,
        "results": [],
        "errors": [],
    }


def run_benchmarks(
    targets: list[Target],
    threads: list[int | None],
    batch: int = 1,
    timing: TimingConfig | None = None,
    on_result: Callable[[Target, int | None, dict | None, Exception | None], None] | None = None,
    stop_on_error: bool = False,
) -> dict:
    """Every target x thread count; failures become entries of ``errors`` unless ``stop_on_error``."""
    timing = timing or TimingConfig()
    results = new_results(timing, batch=batch)
    for target in targets:
        for n in threads:
            try:
                record = benchmark_target(target, n, batch, timing)
            except (EdgeclsError, BenchmarkCrash) as exc:
                if stop_on_error:
                    raise
                results["errors"].append({"target": target.label, "runtime": target.runtime, "threads": n,
                                          "error": str(exc).splitlines()[0]})
                if on_result:
                    on_result(target, n, None, exc)
                continue
            results["results"].append(record)
            if on_result:
                on_result(target, n, record, None)
    return results


__all__ = ["SCHEMA", "BenchmarkCrash", "Target", "artifact_bytes", "benchmark_target", "model_macs", "new_results",
           "parse_threads", "resolve_targets", "run_benchmarks", "targets_from_manifest"]
