"""Reports: files written with the rows, merged devices, and the recommendation rule."""

from __future__ import annotations

import csv
import json

import pytest

from edgecls.errors import EdgeclsError
from edgecls.report import flatten, int8_speedups, recommend, recommendation_line, write_report


def record(model, runtime, precision, p50, threads=1, status="passed", macs=300_000_000, agreement=1.0):
    fmt = {"onnxruntime": "onnx", "openvino": "openvino", "litert": "tflite", "torch": "torch"}[runtime]
    return {
        "target": f"{model}_{precision}.{fmt}", "model": model, "format": fmt, "runtime": runtime,
        "precision": precision, "file": None if runtime == "torch" else f"/x/{model}_{precision}.{fmt}",
        "file_bytes": 4_000_000, "threads": threads, "batch": 1,
        "latency": {"runs": 50, "p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.3, "mean_ms": p50 * 1.02,
                    "std_ms": 0.3, "min_ms": p50 * 0.9, "max_ms": p50 * 1.5, "throughput_ips": 1000 / p50},
        "init_ms": 100.0, "first_inference_ms": 2 * p50, "peak_rss_bytes": 80 * 2**20, "macs": macs,
        "gflops": 2 * macs / (p50 / 1e3) / 1e9, "peak_share": 0.1,
        "status": None if runtime == "torch" else status,
        "parity": None if runtime == "torch" else {"top1_agreement": agreement, "min_cosine": 0.999},
        "raw_ns": [int(p50 * 1e6)] * 3,
    }


def results(slug, records):
    return {"schema": "edgecls-bench/1", "device": {"slug": slug, "cpu": slug.upper(), "physical_cores": 2,
            "isa": ["avx2"], "os": "Linux", "python": "3.11", "versions": {},
            "fp32_peak_formula": "fp32 peak = 2 cores x 2.00 GHz x 32 FLOP/cycle = 128.0 GFLOP/s"},
            "timing": {"warmup_runs": 5, "warmup_seconds": 0.5, "min_runs": 50, "min_seconds": 2, "max_seconds": 60},
            "percentile_rule": "nearest-rank", "gflops_rule": "GFLOP/s = 2 x MACs / p50",
            "results": records, "errors": [{"target": "m tflite int8", "runtime": "tflite", "threads": None,
                                            "error": "export failed: boom"}]}


@pytest.fixture
def two_devices(tmp_path):
    a = [record("m", "onnxruntime", "fp32", 10.0), record("m", "onnxruntime", "int8", 6.0),
         record("m", "openvino", "fp32", 8.0), record("m", "openvino", "int8", 9.0),  # int8 slower: never picked
         record("m", "litert", "fp32", 7.5, status="failed"),  # fastest fp32 but failed parity
         record("m", "torch", "fp32", 3.0),  # the baseline is never recommended
         record("n", "onnxruntime", "fp32", 20.0, macs=600_000_000)]
    b = [record("m", "onnxruntime", "fp32", 30.0), record("m", "openvino", "int8", 12.0)]
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(results("dev-a", a)))
    pb.write_text(json.dumps(results("dev-b", b)))
    return pa, pb


def test_report_files_hold_every_row(tmp_path, two_devices):
    written = write_report(list(two_devices), tmp_path / "report")
    md = written["markdown"].read_text()
    rows = list(csv.DictReader(written["csv"].open()))
    assert len(rows) == 9
    assert {r["device"] for r in rows} == {"dev-a", "dev-b"}
    # 8 latency rows of m and 1 of n, plus one summary row per model and device
    assert md.count("| m | dev-") == 8 + 2 and md.count("| n | dev-a") == 1 + 1
    assert "fp32 peak = 2 cores" in md and "nearest-rank" in md and "export failed: boom" in md
    for name in ("latency_vs_macs", "int8_speedup", "latency_vs_parity"):
        assert written[name].is_file() and written[name].stat().st_size > 1000
        assert f"({name}.png)" in md


def test_recommendation_rules(two_devices):
    from edgecls.report import load_results

    picks = {(p["model"], p["device"]): p for p in recommend(flatten(load_results(list(two_devices))))}
    a = picks[("m", "dev-a")]
    # litert fp32 (7.5) failed parity, torch is a baseline, openvino int8 (9.0) is slower than its fp32 (8.0).
    assert (a["row"]["runtime"], a["row"]["precision"]) == ("onnxruntime", "int8")
    assert a["excluded_int8"] == ["openvino int8"]
    line = recommendation_line(a)
    assert "onnxruntime int8" in line and "skipped openvino int8" in line
    # No fp32 of the same runtime on dev-b: the int8 stands.
    b = picks[("m", "dev-b")]
    assert (b["row"]["runtime"], b["row"]["precision"]) == ("openvino", "int8")


def test_int8_not_recommended_even_when_fp32_failed_parity(tmp_path):
    rows = flatten([{**results("d", [record("m", "openvino", "fp32", 5.0, status="failed"),
                                      record("m", "openvino", "int8", 6.0),
                                      record("m", "onnxruntime", "fp32", 9.0)]), "_source": "x"}])
    (pick,) = recommend(rows)
    assert (pick["row"]["runtime"], pick["row"]["precision"]) == ("onnxruntime", "fp32")


def test_nothing_passed_parity(tmp_path):
    rows = flatten([{**results("d", [record("m", "onnxruntime", "fp32", 5.0, status="failed")]), "_source": "x"}])
    (pick,) = recommend(rows)
    assert pick["row"] is None and "nothing to recommend" in recommendation_line(pick)


def test_int8_speedups(two_devices):
    from edgecls.report import load_results

    speedups = {(s["device"], s["runtime"]): s["speedup"] for s in int8_speedups(flatten(load_results(list(two_devices))))}
    assert speedups[("dev-a", "onnxruntime")] == pytest.approx(10 / 6)
    assert speedups[("dev-a", "openvino")] == pytest.approx(8 / 9)
    assert ("dev-b", "openvino") not in speedups


def test_bad_results_files(tmp_path):
    with pytest.raises(EdgeclsError, match="not found"):
        write_report([tmp_path / "none.json"], tmp_path)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(EdgeclsError, match="not valid JSON"):
        write_report([junk], tmp_path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(EdgeclsError, match="not an edgecls benchmark results file"):
        write_report([other], tmp_path)


def test_summary_has_best_fp32_and_int8_per_thread_count(tmp_path):
    records = [record("m", "onnxruntime", "fp32", 10.0), record("m", "openvino", "fp32", 8.0),
               record("m", "onnxruntime", "int8", 6.0), record("m", "litert", "int8", 4.0, status="failed"),
               record("m", "openvino", "fp32", 5.0, threads=2), record("m", "openvino", "int8", 2.5, threads=2),
               record("m", "torch", "fp32", 1.0, threads=2)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results("dev-a", records)))
    written = write_report([path], tmp_path / "out", plots=False)
    table = written["summary"].read_text().splitlines()
    assert table[0] == ("| model | MMACs | best fp32 ms (1T) | best int8 ms (1T) | int8 speed-up (1T) "
                        "| best fp32 ms (2T) | best int8 ms (2T) | int8 speed-up (2T) | pick (2T) |")
    # litert int8 (4.0) failed parity and torch (1.0) is the baseline: neither is "best".
    assert table[2] == "| m | 300 | 8.00 openvino | 6.00 onnxruntime | 1.33x | 5.00 openvino | 2.50 openvino | 2.00x | openvino int8 |"
    assert "## Summary" in written["markdown"].read_text()


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_report_out_that_cannot_be_a_folder_is_one_line(tmp_path, two_devices, where):
    import subprocess
    import sys
    from pathlib import Path

    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder")
    out = blocker if where == "a file" else blocker / "report"
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "edgecls.cli", "report", *map(str, two_devices), "--out", str(out),
                             "--no-plots"], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(blocker) in line and "--out" in line
    assert blocker.read_text() == "not a folder"
