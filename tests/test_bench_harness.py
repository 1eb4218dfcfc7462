"""The harness end to end on tiny artifacts: subprocess measurement, metrics, bad inputs.

tests/data/bench_tiny.tflite is the network of tests/bench_artifacts.py converted once with
litert-torch 0.10 (torch.manual_seed(0); Conv2d(3, 8, 3, padding=1), ReLU, AdaptiveAvgPool2d(1),
Flatten, Linear(8, 10); input 1x3x32x32), so LiteRT tests need no converter.
"""

from __future__ import annotations

import json

import pytest

from bench_artifacts import TINY_MACS, TINY_TFLITE, write_tiny_onnx, write_tiny_openvino
from edgecls.bench.harness import benchmark_target, parse_threads, resolve_targets, run_benchmarks
from edgecls.runtime.graph import count_artifact_macs, count_onnx_macs
from edgecls.bench.stats import TimingConfig
from edgecls.errors import EdgeclsError, InvalidArgumentError

FAST = TimingConfig(warmup_runs=2, warmup_seconds=0, min_runs=7, min_seconds=0, max_seconds=30)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return write_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def test_onnx_mac_count_matches_hand_count(tmp_path, tiny_onnx):
    counted = count_onnx_macs(tiny_onnx)
    assert counted.macs == TINY_MACS and counted.complete
    assert counted.by_op == {"Conv": 8 * 32 * 32 * 27, "Gemm": 80}
    dynamic = write_tiny_onnx(tmp_path / "dyn.onnx", batch="N")
    four = count_onnx_macs(dynamic, batch=4)
    assert four.macs == 4 * TINY_MACS and four.macs_per_image == TINY_MACS


def test_openvino_and_tflite_mac_counts_agree(tmp_path, tiny_onnx):
    pytest.importorskip("openvino")
    pytest.importorskip("ai_edge_litert")
    xml = write_tiny_openvino(tiny_onnx, tmp_path / "tiny.xml")
    assert count_artifact_macs(xml).macs == TINY_MACS
    assert count_artifact_macs(TINY_TFLITE).macs == TINY_MACS


def test_onnxruntime_measurement_record(tiny_onnx):
    (target,) = resolve_targets([str(tiny_onnx)])
    record = benchmark_target(target, threads=1, batch=1, timing=FAST)
    latency = record["latency"]
    assert record["runtime"] == "onnxruntime" and record["threads"] == 1
    assert latency["runs"] == len(record["raw_ns"]) >= 7
    assert record["warmup_runs"] >= 2
    assert latency["min_ms"] <= latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert latency["p50_ms"] in [t / 1e6 for t in record["raw_ns"]]  # nearest rank: a measured time
    assert record["output_shape"] == [1, 10] and record["output_finite"]
    assert record["input"]["shape"] == [1, 3, 32, 32]
    assert record["init_ms"] > 0 and record["first_inference_ms"] > 0
    assert record["peak_rss_bytes"] >= record["baseline_rss_bytes"] > 0
    assert record["file_bytes"] == tiny_onnx.stat().st_size
    assert record["macs"] == TINY_MACS and "graph" in record["macs_source"]
    assert record["gflops"] == pytest.approx(2 * TINY_MACS / (latency["p50_ms"] / 1e3) / 1e9)
    if record["fp32_peak_gflops"]:
        assert record["peak_share"] == pytest.approx(record["gflops"] / record["fp32_peak_gflops"])
        assert "GFLOP/s" in record["fp32_peak_formula"]


def test_dynamic_batch_and_static_batch_mismatch(tmp_path, tiny_onnx):
    dynamic = write_tiny_onnx(tmp_path / "dyn.onnx", batch="N")
    (target,) = resolve_targets([str(dynamic)])
    record = benchmark_target(target, threads=1, batch=3, timing=FAST)
    assert record["input"]["shape"] == [3, 3, 32, 32] and record["output_shape"] == [3, 10]
    assert record["latency"]["throughput_ips"] == pytest.approx(3000 / record["latency"]["mean_ms"])
    (static,) = resolve_targets([str(tiny_onnx)])
    with pytest.raises(InvalidArgumentError, match="static batch of 1"):
        benchmark_target(static, threads=1, batch=2, timing=FAST)


def test_export_folder_uses_manifest(tmp_path):
    import hashlib

    path = write_tiny_onnx(tmp_path / "model_fp32.onnx")
    (tmp_path / "manifest.json").write_text(json.dumps({
        "schema": 2,
        "artifacts": [
            {"file": "model_fp32.onnx", "format": "onnx", "precision": "fp32", "status": "passed",
             "model": "squeezenet1_1", "macs": 12345, "preprocessing": {"resolution": 32},
             "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "parity": {"passed": True, "top1_agreement": 1.0}},
            {"file": None, "intended_file": "model_int8.onnx", "format": "onnx", "precision": "int8",
             "status": "failed"},
        ],
    }))
    targets = resolve_targets([str(tmp_path)])
    assert [(t.format, t.precision, t.model, t.resolution) for t in targets] == [("onnx", "fp32", "squeezenet1_1", 32)]
    results = run_benchmarks(targets, [1], timing=FAST)
    (record,) = results["results"]
    assert record["macs"] == 12345 and record["macs_source"] == "manifest"
    assert record["parity"]["passed"] is True and record["status"] == "passed"
    assert results["device"]["cpu"] and results["percentile_rule"].startswith("nearest-rank")
    # The artifact named directly finds the same manifest entry beside it.
    (direct,) = resolve_targets([str(tmp_path / "model_fp32.onnx")])
    assert direct.precision == "fp32" and direct.model == "squeezenet1_1"


def test_missing_artifact_is_one_line(tmp_path):
    with pytest.raises(EdgeclsError, match="artifact not found") as info:
        resolve_targets([str(tmp_path / "nothing.onnx")])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_corrupt_artifact_is_one_line(tmp_path, suffix):
    if suffix == ".tflite":
        pytest.importorskip("ai_edge_litert")
    bad = tmp_path / f"corrupt{suffix}"
    bad.write_bytes(b"this is not a model" * 100)
    (target,) = resolve_targets([str(bad)])
    with pytest.raises(EdgeclsError) as info:
        benchmark_target(target, threads=1, timing=FAST)
    assert "\n" not in str(info.value) and str(bad.name) in str(info.value)


def test_unknown_suffix_and_empty_folder(tmp_path):
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(EdgeclsError, match="cannot tell the format"):
        resolve_targets([str(other)])
    with pytest.raises(EdgeclsError, match="no manifest.json"):
        resolve_targets([str(tmp_path)])


def test_parse_threads():
    assert parse_threads("1,2") == [1, 2]
    assert parse_threads(None) == [None]
    for bad in ("0", "a", "1,-2"):
        with pytest.raises(InvalidArgumentError, match="threads"):
            parse_threads(bad)


def test_torch_eager_baseline_by_model_name():
    pytest.importorskip("torch")
    (target,) = resolve_targets(["squeezenet"], resolution=64)
    assert (target.format, target.model, target.runtime) == ("torch", "squeezenet1_1", "torch")
    record = benchmark_target(target, threads=1, timing=FAST)
    assert record["input"]["shape"] == [1, 3, 64, 64] and record["output_shape"] == [1, 1000]
    import edgecls
    from edgecls.profile import profile_model

    expected = profile_model(edgecls.create_model("squeezenet1_1"), resolution=64).macs
    assert record["macs"] == expected and "torch profile" in record["macs_source"]
    assert record["file"] is None and record["runtime_version"].startswith("2.")


def test_unknown_model_name_suggests():
    pytest.importorskip("torch")
    from edgecls.errors import UnknownModelError

    with pytest.raises(UnknownModelError, match="did you mean"):
        resolve_targets(["squeezenet9"])
