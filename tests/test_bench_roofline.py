"""Measured roofline and scaling sweeps: arithmetic against hand computation, the peak microbenchmarks
(real onnxruntime kernels at a small size), the cache, the CLI end to end, and sweep parsing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench_artifacts import write_tiny_onnx
from edgecls.bench.roofline import (MeasuredPeak, PeakTable, cached_peaks, calibrated_peaks, measure_child,
                                    plot_roofline, roofline_point, save_peaks, tensor_bytes)
from edgecls.bench.sweep import merge_results, parse_batches, plot_latency_vs_threads, plot_throughput_vs_batch
from edgecls.errors import EdgeclsError, InvalidArgumentError


def _record(**over):
    record = {"target": "m.onnx", "file": "m.onnx", "model": "m", "runtime": "onnxruntime", "precision": "fp32",
              "threads": 1, "batch": 2, "macs": 300_000_000, "file_bytes": 14_000_000,
              "input": {"shape": [2, 3, 224, 224], "dtype": "float32"}, "output_shape": [2, 1000],
              "latency": {"p50_ms": 20.0, "throughput_ips": 100.0}}
    record.update(over)
    return record


def test_roofline_point_matches_hand_computation():
    peak = MeasuredPeak(threads=1, fp32_gflops=80.0, int8_gops=160.0, bandwidth_gbs=10.0)
    point = roofline_point(_record(), peak)
    ops = 2 * 300e6 * 2
    traffic = 14e6 + 2 * 3 * 224 * 224 * 4 + 2 * 1000 * 4
    assert point["ops"] == pytest.approx(ops)
    assert point["bytes"] == pytest.approx(traffic)
    assert point["intensity"] == pytest.approx(ops / traffic)
    # intensity ~ 77 ops/byte x 10 GB/s = 770 GFLOP/s > 80: compute-bound under the fp32 roof
    assert point["bound"] == "compute" and point["attainable"] == pytest.approx(80.0)
    achieved = ops / 0.020 / 1e9
    assert point["achieved"] == pytest.approx(achieved)
    assert point["share_of_attainable"] == pytest.approx(achieved / 80.0)


def test_int8_uses_the_integer_roof_and_small_intensity_is_memory_bound():
    peak = MeasuredPeak(threads=2, fp32_gflops=80.0, int8_gops=160.0, bandwidth_gbs=10.0)
    int8 = roofline_point(_record(precision="int8", threads=2), peak)
    assert int8["compute_roof"] == 160.0
    # 1 MAC per 100 weight bytes: intensity 0.02 ops/byte -> 0.2 GFLOP/s memory roof
    thin = roofline_point(_record(macs=1_000, file_bytes=100_000, input={}, output_shape=[], batch=1), peak)
    assert thin["bound"] == "memory"
    assert thin["attainable"] == pytest.approx(2 * 1_000 / 100_000 * 10.0)
    assert roofline_point(_record(macs=None), peak) is None


def test_bf16_uses_the_bf16_roof_only_where_one_was_measured():
    with_bf16 = MeasuredPeak(threads=1, fp32_gflops=80.0, int8_gops=160.0, bandwidth_gbs=1e6, bf16_gflops=300.0)
    assert roofline_point(_record(precision="bf16"), with_bf16)["compute_roof"] == 300.0
    assert roofline_point(_record(precision="fp32"), with_bf16)["compute_roof"] == 80.0
    # a CPU without bf16 runs a bf16 artifact in fp32: its roof is fp32's
    without = MeasuredPeak(threads=1, fp32_gflops=80.0, int8_gops=160.0, bandwidth_gbs=1e6)
    assert roofline_point(_record(precision="bf16"), without)["compute_roof"] == 80.0
    # the table keeps the new fields through its JSON form
    table = PeakTable("dev", "x", {}, [with_bf16])
    assert PeakTable.from_dict(json.loads(json.dumps(table.to_dict()))).peaks == [with_bf16]


def test_each_roof_is_the_fastest_library_and_bf16_is_real_where_the_cpu_has_it():
    from edgecls.runtime.base import cpu_bf16_flags

    figures = measure_child(threads=1, size=256, bandwidth_mb=8)
    libraries = figures["by_library"]
    assert figures["fp32_gflops"] == max(libraries["fp32"].values())
    assert figures["int8_gops"] == max(libraries["int8"].values())
    pytest.importorskip("openvino")  # in the [all] install CI runs; without it only onnxruntime sets the roofs
    assert set(libraries["fp32"]) == {"onnxruntime", "openvino"}
    assert "openvino" in libraries["int8"], "OpenVINO's FakeQuantize MatMul did not run as an int8 GEMM"
    if cpu_bf16_flags():
        assert figures["bf16_gflops"] == libraries["bf16"]["openvino"] > 0
    else:
        assert figures["bf16_gflops"] is None and "bf16" not in libraries


def test_tensor_bytes_by_dtype():
    assert tensor_bytes([1, 3, 8, 8], "uint8") == 192
    assert tensor_bytes([1, 3, 8, 8], "float16") == 384
    assert tensor_bytes([2, 10], "float32") == 80


def test_peak_microbenchmarks_run_real_kernels_and_agree_with_numpy():
    # Small sizes keep this quick; the figures must be real positive rates, and the GEMM the
    # microbenchmark times must compute what numpy computes (it is the operation we claim to time).
    figures = measure_child(threads=1, size=128, bandwidth_mb=8)
    assert figures["threads"] == 1
    for key in ("fp32_gflops", "int8_gops", "bandwidth_gbs"):
        assert figures[key] > 0 and np.isfinite(figures[key])
    import onnxruntime  # noqa: F401 - the same graph as the microbenchmark, checked for its result
    from onnx import TensorProto, helper, numpy_helper

    from edgecls.bench.roofline import _graph, _session

    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    b = rng.integers(-64, 64, (16, 16), dtype=np.int8)  # 7-bit, as the microbenchmark (see its comment)
    session = _session(_graph("MatMulInteger", [helper.make_tensor_value_info("a", TensorProto.UINT8, [16, 16])],
                              [numpy_helper.from_array(b, "b")], TensorProto.INT32), 1)
    np.testing.assert_array_equal(session.run(None, {"a": a})[0], a.astype(np.int32) @ b.astype(np.int32))


def test_peaks_are_cached_per_device_and_measured_only_when_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cached_peaks("test-device") is None
    table = calibrated_peaks([1], "test-device", size=64, bandwidth_mb=4)
    assert [p.threads for p in table.peaks] == [1]
    again = cached_peaks("test-device")
    assert again is not None and again.peaks == table.peaks and "onnxruntime" in again.method["fp32"]
    # a second thread count is added to the cached table, the first one kept as measured
    both = calibrated_peaks([1, 2], "test-device", size=64, bandwidth_mb=4)
    assert [p.threads for p in both.peaks] == [1, 2] and both.peaks[0] == table.peaks[0]
    with pytest.raises(EdgeclsError, match="not an edgecls peak table"):
        PeakTable.from_dict({"schema": "other"})


def test_roofline_plot_has_every_point(tmp_path):
    table = PeakTable("dev", "onnxruntime x", {}, [MeasuredPeak(1, 80.0, 160.0, 10.0), MeasuredPeak(2, 150.0, 300.0, 12.0)])
    records = [_record(), _record(precision="int8", threads=2)]
    assert plot_roofline(records, table, tmp_path / "roof.png")
    assert (tmp_path / "roof.png").stat().st_size > 10_000
    assert not plot_roofline([_record(macs=None)], table, tmp_path / "none.png")


def test_parse_batches():
    assert parse_batches("1,2,4,8") == [1, 2, 4, 8]
    assert parse_batches("4, 2,4") == [4, 2]
    assert parse_batches(None) == [1] and parse_batches(3) == [3]
    for bad in ("0", "1,x", "-2", ","):
        with pytest.raises(InvalidArgumentError, match="--batch"):
            parse_batches(bad)


def test_merge_and_sweep_plots(tmp_path):
    parts = []
    for batch in (1, 2, 4):
        parts.append({"batch": batch, "device": {}, "results": [
            _record(batch=batch, threads=t, latency={"p50_ms": batch * 2.0 / t, "throughput_ips": 500.0 * t})
            for t in (1, 2)], "errors": [{"target": "x", "error": "e"}] if batch == 4 else []})
    merged = merge_results(parts)
    assert merged["batch"] == [1, 2, 4] and len(merged["results"]) == 6
    assert merged["errors"] == [{"target": "x", "error": "e", "batch": 4}]
    assert plot_throughput_vs_batch(merged["results"], tmp_path / "tb.png")
    assert plot_latency_vs_threads(merged["results"], tmp_path / "lt.png")
    # a single batch size has no sweep to draw
    assert not plot_throughput_vs_batch(parts[0]["results"], tmp_path / "none.png")


def test_cli_sweep_with_roofline_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from edgecls.bench.device import describe_device

    # a cached table (as --calibrate-peak leaves it) so the test needs no full-size measurement
    from edgecls.bench.roofline import _runtime_label

    save_peaks(PeakTable(describe_device().slug, _runtime_label(),
                         {"statistic": "test"}, [MeasuredPeak(1, 50.0, 100.0, 8.0)]))
    artifact = write_tiny_onnx(tmp_path / "dyn.onnx", batch="N")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "edgecls.cli", "bench", str(artifact), "--threads", "1",
                           "--batch", "1,4", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5",
                           "--min-seconds", "0", "--json", str(out), "--plots", str(tmp_path / "plots")],
                          capture_output=True, text=True, env={**__import__("os").environ,
                                                                "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert sorted(r["batch"] for r in results["results"]) == [1, 4]
    for record in results["results"]:
        roof = record["roofline"]
        assert roof["compute_roof"] == 50.0 and roof["achieved"] > 0
        assert roof["ops"] == pytest.approx(2 * record["macs"] * record["batch"])
    assert (tmp_path / "plots" / "throughput_vs_batch.png").is_file()
    assert (tmp_path / "plots" / "roofline.png").is_file()
    assert "measured peak at 1 thread(s)" in proc.stdout
