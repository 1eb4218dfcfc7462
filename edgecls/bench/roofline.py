"""A measured roofline: what this machine attains, and where each artifact sits under it.

The datasheet formula in ``edgecls.bench.device`` (cores x GHz x FLOPs/cycle) assumes the base
clock and every FMA pipe busy; on the AVX-512 EPYC a 2048^3 sgemm reached 89 GFLOP/s on one core
against the formula's 83, so "share of peak" above 100 % was possible. Here the ceilings are
measured with the runtime libraries the artifacts use, per thread count, in a fresh process each:

- fp32 GEMM GFLOP/s: one ``MatMul`` of two N x N float32 matrices (2 N^3 FLOPs per run), in
  onnxruntime (MLAS) and, where installed, OpenVINO (oneDNN) with an f32 hint;
- int8 GEMM GOP/s: onnxruntime's ``MatMulInteger`` of uint8 x int8 N x N matrices (2 N^3 ops,
  int32 result), the u8s8 kernel that static QDQ int8 graphs run, and OpenVINO's MatMul between
  two FakeQuantize (256 levels), which its CPU plugin runs as an int8 GEMM (AMX-INT8 / VNNI);
- bf16 GEMM GFLOP/s, only on a CPU with bf16 arithmetic: OpenVINO's MatMul compiled with
  ``INFERENCE_PRECISION_HINT=bf16`` (AVX512_BF16 or AMX-BF16 kernels); counted only when the
  compiled graph reports the MatMul running in bf16;
- memory bandwidth GB/s: one ``Add`` of two float32 arrays far larger than the last-level cache
  (reads 2 arrays, writes 1: 3 x bytes per run).

Each roof is the faster library's figure (the table records both and which one won): an artifact
of one runtime may beat the other library's GEMM (measured on a Sapphire Rapids Xeon with AMX,
1 thread, N=1024: OpenVINO bf16 MatMul 302 GFLOP/s against 135-143 GFLOP/s fp32 in either
library, so an OpenVINO bf16 MobileNetV2 sat at 161 % of an fp32-only roof). Each figure is the
best median of a few rounds (a shared machine only ever makes a run slower, so the fastest round
is the closest to the attainable ceiling). Results are cached per device slug and library versions
under ``$XDG_CACHE_HOME/edgecls/peaks`` (``~/.cache`` by default); ``edgecls bench
--calibrate-peak`` measures again.

The roofline of an artifact uses a minimal-traffic model: every weight byte (the artifact's size
on disk with its side files) and every input and output byte crosses memory once per inference.
Real traffic is higher (activations spill out of cache), so the computed intensity is an upper
bound and the memory roof a generous one: an artifact far below its roof is slow for a reason the
model does not see (poor kernels, threading), not for want of bandwidth.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError

SCHEMA = "edgecls-peak/2"  # /2 added the bf16 roof and the per-library figures
DEFAULT_GEMM_SIZE = 1024  # 2.1 GFLOP per run: tens of ms, long enough to time, short enough to repeat
DEFAULT_BANDWIDTH_MB = 128  # per array; far beyond any desktop or server last-level cache
ROUNDS = 5
RUNS_PER_ROUND = 5


@dataclass
class MeasuredPeak:
    threads: int
    fp32_gflops: float
    int8_gops: float
    bandwidth_gbs: float
    bf16_gflops: float | None = None  # None: no bf16 arithmetic on this CPU (or no OpenVINO to time it)
    by_library: dict = field(default_factory=dict)  # {"fp32": {"onnxruntime": 140.1, "openvino": 135.0}, ...}

    def compute_peak(self, precision: str | None) -> float:
        """The compute roof for an artifact of ``precision``: int8 runs the integer kernels, bf16
        the bf16 ones where the CPU has them (without, a bf16 artifact runs in fp32)."""
        if precision == "int8":
            return self.int8_gops
        if precision == "bf16" and self.bf16_gflops:
            return self.bf16_gflops
        return self.fp32_gflops


@dataclass
class PeakTable:
    device: str
    runtime: str  # the library whose kernels were timed, with its version
    method: dict
    peaks: list[MeasuredPeak] = field(default_factory=list)

    def for_threads(self, threads: int | None) -> MeasuredPeak | None:
        if not self.peaks:
            return None
        if threads is None:
            return max(self.peaks, key=lambda p: p.threads)
        exact = [p for p in self.peaks if p.threads == threads]
        return exact[0] if exact else None

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "device": self.device, "runtime": self.runtime, "method": self.method,
                "peaks": [asdict(p) for p in self.peaks]}

    @classmethod
    def from_dict(cls, data: dict) -> "PeakTable":
        if data.get("schema") != SCHEMA:
            raise EdgeclsError(f"not an edgecls peak table (schema {data.get('schema')!r}, expected {SCHEMA})")
        return cls(data["device"], data["runtime"], data["method"], [MeasuredPeak(**p) for p in data["peaks"]])


# -- the microbenchmarks (child) ---------------------------------------------------------------


def _session(model, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _graph(op: str, inputs: list, initializers: list, output_type: int):
    from onnx import helper

    node = helper.make_node(op, [i.name for i in inputs] + [t.name for t in initializers], ["y"])
    graph = helper.make_graph([node], op.lower(), inputs, [helper.make_tensor_value_info("y", output_type, None)],
                              initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _best_median_seconds(run, rounds: int = ROUNDS, runs: int = RUNS_PER_ROUND) -> float:
    run()  # first run: allocation, kernel selection
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        medians.append(sorted(times)[len(times) // 2])
    return min(medians)


def measure_payload(payload: dict) -> dict:
    """The isolated child's entry (edgecls.isolation.run_isolated)."""
    return measure_child(int(payload["threads"]), int(payload["size"]), int(payload["bandwidth_mb"]))


def measure_child(threads: int, size: int, bandwidth_mb: int) -> dict:
    """The three ceilings at ``threads`` threads; the figures only, as a dict."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n = size
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "b")
    fp32 = _session(_graph("MatMul", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])], [b],
                           TensorProto.FLOAT), threads)
    fp32_s = _best_median_seconds(lambda: fp32.run(None, {"a": a}))

    a8 = rng.integers(0, 255, (n, n), dtype=np.uint8)
    # 7-bit weights (as reduce_range quantizes them): AVX2's u8 x s8 kernel (vpmaddubsw) adds two
    # products into a saturating int16, which full-range weights overflow (255 x 127 x 2 > 32767);
    # the timed kernel is the same either way, but the measured graph should compute right.
    b8 = numpy_helper.from_array(rng.integers(-64, 64, (n, n), dtype=np.int8), "b")
    int8 = _session(_graph("MatMulInteger", [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])], [b8],
                           TensorProto.INT32), threads)
    int8_s = _best_median_seconds(lambda: int8.run(None, {"a": a8}))

    elements = bandwidth_mb * (1 << 20) // 4
    x = rng.standard_normal(elements, dtype=np.float32)
    y = rng.standard_normal(elements, dtype=np.float32)
    add = _session(_graph("Add", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [elements]),
                                  helper.make_tensor_value_info("c", TensorProto.FLOAT, [elements])], [],
                          TensorProto.FLOAT), threads)
    add_s = _best_median_seconds(lambda: add.run(None, {"a": x, "c": y}), rounds=3, runs=3)
    rate = lambda seconds: 2 * n ** 3 / seconds / 1e9  # noqa: E731 - GFLOP/s (GOP/s) of one N^3 GEMM
    by_library = {"fp32": {"onnxruntime": rate(fp32_s)}, "int8": {"onnxruntime": rate(int8_s)}, "bf16": {}}
    for precision, seconds in _openvino_gemm_seconds(threads, n).items():
        by_library[precision]["openvino"] = rate(seconds)
    best = {precision: max(figures.values()) if figures else None for precision, figures in by_library.items()}
    return {
        "threads": threads,
        "fp32_gflops": best["fp32"],
        "int8_gops": best["int8"],
        "bf16_gflops": best["bf16"],
        "bandwidth_gbs": 3 * x.nbytes / add_s / 1e9,
        "by_library": {precision: figures for precision, figures in by_library.items() if figures},
    }


def _openvino_gemm_seconds(threads: int, n: int) -> dict[str, float]:
    """Best-median seconds of OpenVINO's N^3 GEMM per precision it really runs here ({} without
    OpenVINO). A precision is timed only when the compiled MatMul reports running in it: a bf16 hint
    on a CPU without bf16 falls back to f32 silently, which would pass f32 off as a bf16 roof."""
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return {}
    import numpy as np

    from edgecls.runtime.base import cpu_bf16_flags

    rng = np.random.default_rng(0)
    core = ov.Core()

    def timed(model, feed: np.ndarray, hint: str, expect: set[str]) -> float | None:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
        ran = {op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()
               if "layerType" in op.get_rt_info()
               and op.get_rt_info()["layerType"].astype(str) in ("MatMul", "FullyConnected")}
        if not ran or not ran <= expect:
            return None
        request = compiled.create_infer_request()
        return _best_median_seconds(lambda: request.infer({0: feed}))

    a = ops.parameter([n, n], ov.Type.f32, name="a")
    matmul = ov.Model([ops.matmul(a, ops.constant(rng.standard_normal((n, n), dtype=np.float32)), False, False)], [a])
    feed = rng.standard_normal((n, n), dtype=np.float32)
    seconds = {"fp32": timed(matmul, feed, "f32", {"f32"})}
    if cpu_bf16_flags():
        seconds["bf16"] = timed(matmul, feed, "bf16", {"bf16"})

    def fake_quantize(node, low: float, high: float):
        lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
        return ops.fake_quantize(node, lo, hi, lo, hi, 256)

    a = ops.parameter([n, n], ov.Type.f32, name="a")
    weights = ops.constant(rng.integers(-128, 128, (n, n)).astype(np.float32))
    quantized = ov.Model([ops.matmul(fake_quantize(a, 0.0, 255.0), fake_quantize(weights, -128.0, 127.0), False, False)],
                         [a])
    seconds["int8"] = timed(quantized, rng.integers(0, 256, (n, n)).astype(np.float32), "f32", {"i8", "u8"})
    return {precision: s for precision, s in seconds.items() if s}


# -- the parent --------------------------------------------------------------------------------


def cache_path(device_slug: str, runtime: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecls" / "peaks"
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in f"{device_slug}_{runtime}")
    return root / f"{safe}.json"


def _runtime_label() -> str:
    """The libraries whose kernels set the roofs, with versions (a new version gets a new cache)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        label = f"onnxruntime {version('onnxruntime')}"
    except PackageNotFoundError:
        raise EdgeclsError("measuring the peak runs onnxruntime's kernels: pip install 'edgecls[runtime]'") from None
    try:
        return f"{label}, openvino {version('openvino')}"
    except PackageNotFoundError:
        return label


def measure_peaks(threads: list[int], size: int = DEFAULT_GEMM_SIZE, bandwidth_mb: int = DEFAULT_BANDWIDTH_MB,
                  device_slug: str | None = None, timeout: float = 600.0) -> PeakTable:
    """Measure every thread count in its own process (a warm thread pool or a big array left over
    from another thread count must not flatter or slow the next)."""
    from edgecls.isolation import run_isolated

    if device_slug is None:
        from edgecls.bench.device import describe_device

        device_slug = describe_device().slug
    runtime = _runtime_label()
    peaks = []
    for n in threads:
        outcome = run_isolated("edgecls.bench.roofline:measure_payload",
                               {"threads": n, "size": size, "bandwidth_mb": bandwidth_mb}, timeout=timeout)
        outcome.raise_for_user_error()
        if not outcome.ok:
            raise EdgeclsError(f"peak measurement at {n} threads failed: {outcome.describe()}")
        peaks.append(MeasuredPeak(**outcome.value))
    method = {
        "fp32": f"MatMul {size}x{size}x{size} float32, 2*N^3 FLOPs: the faster of onnxruntime and OpenVINO (f32 hint)",
        "int8": (f"{size}x{size}x{size} uint8 x int8 GEMM, 2*N^3 ops: the faster of onnxruntime MatMulInteger and "
                 "OpenVINO MatMul between FakeQuantize (run as int8)"),
        "bf16": (f"OpenVINO MatMul {size}x{size}x{size} with INFERENCE_PRECISION_HINT=bf16, 2*N^3 FLOPs, only where "
                 "the CPU has bf16 arithmetic and the MatMul runs in bf16"),
        "bandwidth": f"onnxruntime Add of two {bandwidth_mb} MiB float32 arrays, 3 x array bytes moved",
        "statistic": f"best of {ROUNDS} round medians ({RUNS_PER_ROUND} runs each; bandwidth 3 x 3)",
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return PeakTable(device_slug, runtime, method, peaks)


def save_peaks(table: PeakTable) -> Path:
    path = cache_path(table.device, table.runtime)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(table.to_dict(), indent=2) + "\n")
    partial.replace(path)
    return path


def cached_peaks(device_slug: str) -> PeakTable | None:
    """The cached table of this device and the installed onnxruntime, or None."""
    try:
        path = cache_path(device_slug, _runtime_label())
    except EdgeclsError:
        return None
    if not path.is_file():
        return None
    try:
        return PeakTable.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, EdgeclsError):
        return None  # a damaged cache is measured again rather than trusted


def calibrated_peaks(threads: list[int], device_slug: str, refresh: bool = False, **kwargs: Any) -> PeakTable:
    """Cached peaks covering ``threads``, measuring (and caching) the thread counts that are missing."""
    table = None if refresh else cached_peaks(device_slug)
    missing = [n for n in threads if table is None or table.for_threads(n) is None]
    if missing:
        fresh = measure_peaks(missing, device_slug=device_slug, **kwargs)
        if table is None:
            table = fresh
        else:
            table.peaks = sorted(table.peaks + fresh.peaks, key=lambda p: p.threads)
            table.method = fresh.method
        save_peaks(table)
    return table


# -- the roofline of one measurement -----------------------------------------------------------

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int32": 4, "float64": 8}


def tensor_bytes(shape: list[int] | tuple[int, ...], dtype: str) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * _DTYPE_BYTES.get(str(dtype), 4)


def attach_roofline(results: dict, thread_counts: list, refresh: bool = False) -> PeakTable | None:
    """Give every record of a bench run its ``roofline`` (None where this machine has no measured
    peak), and the run its ``measured_peak``: cached peaks, or measured now with ``refresh``.
    Local runs and the device agent both call this, so a record has the same keys wherever it ran."""
    slug = results["device"]["slug"]
    if refresh:
        counts = sorted({n for n in thread_counts if n} | {r["threads"] for r in results["results"] if r["threads"]})
        table = calibrated_peaks(counts, slug, refresh=True)
    else:
        table = cached_peaks(slug)
    if table is not None:
        results["measured_peak"] = table.to_dict()
    for record in results["results"]:
        peak = table.for_threads(record["threads"]) if table is not None else None
        record["roofline"] = roofline_point(record, peak) if peak else None
    return table


def roofline_point(record: dict, peak: MeasuredPeak) -> dict | None:
    """Where one benchmark record sits under the measured roofline; None without MACs or a file.

    ops = 2 x MACs x batch; bytes = artifact bytes + input bytes + output bytes (minimal traffic,
    see the module docstring); intensity = ops / bytes; attainable = min(compute roof,
    intensity x bandwidth).
    """
    macs, p50 = record.get("macs"), (record.get("latency") or {}).get("p50_ms")
    if not macs or not p50 or not record.get("file_bytes"):
        return None
    batch = int(record.get("batch") or 1)
    ops = 2.0 * macs * batch
    inp = record.get("input") or {}
    in_bytes = tensor_bytes(inp.get("shape") or [], inp.get("dtype") or "float32") if inp.get("shape") else 0
    out_shape = record.get("output_shape") or []
    out_bytes = tensor_bytes(out_shape, "float32") if out_shape else 0
    traffic = float(record["file_bytes"] + in_bytes + out_bytes)
    intensity = ops / traffic
    compute = peak.compute_peak(record.get("precision"))
    memory = intensity * peak.bandwidth_gbs
    attainable = min(compute, memory)
    achieved = ops / (p50 / 1e3) / 1e9
    return {
        "threads": peak.threads,
        "ops": ops,
        "bytes": traffic,
        "intensity": intensity,
        "compute_roof": compute,
        "memory_roof": memory,
        "attainable": attainable,
        "bound": "compute" if compute <= memory else "memory",
        "achieved": achieved,
        "share_of_attainable": achieved / attainable,
        "share_of_compute_peak": achieved / compute,
    }


def plot_roofline(records: list[dict], table: PeakTable, path: Path) -> bool:
    """Log-log roofline per thread count with every record that has a point; False if none has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []
    for record in records:
        peak = table.for_threads(record.get("threads"))
        point = roofline_point(record, peak) if peak else None
        if point:
            points.append((record, point))
    if not points:
        return False
    thread_counts = sorted({p["threads"] for _, p in points})
    fig, axes = plt.subplots(1, len(thread_counts), figsize=(6.5 * len(thread_counts), 5), squeeze=False)
    markers = {"fp32": "o", "fp16": "s", "int8": "^", "bf16": "D"}
    for ax, threads in zip(axes[0], thread_counts):
        peak = table.for_threads(threads)
        chosen = [(r, p) for r, p in points if p["threads"] == threads]
        lo = min(p["intensity"] for _, p in chosen) / 3
        hi = max(p["intensity"] for _, p in chosen) * 3
        import numpy as np

        xs = np.geomspace(lo, hi, 200)
        roofs = [(peak.fp32_gflops, f"fp32 GEMM {peak.fp32_gflops:.0f} GFLOP/s", "-"),
                 (peak.int8_gops, f"int8 GEMM {peak.int8_gops:.0f} GOP/s", "--")]
        if peak.bf16_gflops:
            roofs.append((peak.bf16_gflops, f"bf16 GEMM {peak.bf16_gflops:.0f} GFLOP/s", ":"))
        for roof, label, style in roofs:
            ax.plot(xs, np.minimum(roof, xs * peak.bandwidth_gbs), style, color="black", lw=1, label=label)
        for record, point in chosen:
            ax.scatter(point["intensity"], point["achieved"], marker=markers.get(record.get("precision"), "o"),
                       s=30, label=f"{record.get('model') or record.get('target')} {record.get('runtime')} "
                                   f"{record.get('precision')}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (ops / byte, minimal traffic)")
        ax.set_ylabel("achieved GFLOP/s (GOP/s for int8)")
        ax.set_title(f"{threads} thread(s), bandwidth {peak.bandwidth_gbs:.1f} GB/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"Measured roofline: {table.device} ({table.runtime})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True

