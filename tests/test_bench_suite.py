"""Suite files: parsing, validation of every key, and what a run would export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecls.suite import _missing, load_suite, results_path
from edgecls.errors import EdgeclsError

REPO = Path(__file__).resolve().parents[1]

VALID = """
name = "t"
description = "test suite"
models = ["squeezenet1_1", { name = "mobilenetv2_100", resolution = 160, precisions = ["fp32"] }]
formats = ["onnx", "tflite"]
precisions = ["fp32", "int8"]
threads = [1, 2, 2]
batch = 1
torch_baseline = false

[timing]
min_runs = 7
min_seconds = 0.1
max_seconds = 3

[export]
dir = "cache"
calib_size = 8

[output]
dir = "out"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def test_valid_suite_parses(tmp_path):
    suite = load_suite(write(tmp_path, VALID), check_models=False)
    assert [m.name for m in suite.models] == ["squeezenet1_1", "mobilenetv2_100"]
    assert suite.models[0].formats == ["onnx", "tflite"] and suite.models[0].precisions == ["fp32", "int8"]
    assert suite.models[1].resolution == 160 and suite.models[1].precisions == ["fp32"]
    assert suite.thread_counts() == [1, 2]
    assert suite.timing.min_runs == 7 and suite.timing.warmup_runs == 5  # unset keys keep the bench defaults
    assert suite.export_dir == (tmp_path / "cache").resolve() and suite.results_dir == (tmp_path / "out").resolve()
    assert suite.calib_size == 8 and suite.torch_baseline is False
    # (2 formats x 2 precisions + 2 formats x 1 precision) x 2 thread counts
    assert suite.size() == (4 + 2) * 2


def test_shipped_suites_parse():
    quick = load_suite(REPO / "benchmarks" / "suites" / "quick.toml")
    zoo = load_suite(REPO / "benchmarks" / "suites" / "zoo.toml")
    assert 1 < len(quick.models) <= 4
    from edgecls.models import list_models

    assert sorted(m.name for m in zoo.models) == list_models()
    assert all(m.resolution is None for m in zoo.models)  # native resolution


@pytest.mark.parametrize("text, key", [
    ('models = ["squeezenet1_1"]\nthreds = [1]\n', "threds"),
    ('models = ["squeezenet1_1"]\n[timing]\nmin_run = 3\n', "min_run"),
    ('models = ["squeezenet1_1"]\n[export]\nformat = "onnx"\n', "format"),
    ('models = ["squeezenet1_1"]\n[output]\nfolder = "x"\n', "folder"),
    ('models = [{ name = "squeezenet1_1", threads = 2 }]\n', "threads"),
])
def test_unknown_keys_are_one_clear_error(tmp_path, text, key):
    with pytest.raises(EdgeclsError, match=f"unknown key '{key}'") as info:
        load_suite(write(tmp_path, text), check_models=False)
    message = str(info.value)
    assert "\n" not in message and "allowed:" in message and "suite.toml" in message


@pytest.mark.parametrize("text, words", [
    ('models = ["squeezenet1_1"]\nformats = ["onnx", "tensorrt"]\n', "unknown format 'tensorrt'"),
    ('models = ["squeezenet1_1"]\nprecisions = ["int4"]\n', "unknown precision 'int4'"),
    ('models = ["squeezenet1_1"]\nthreads = [0]\n', "'threads' must be a positive integer"),
    ('models = ["squeezenet1_1"]\nweights = "imagenet"\n', "'weights' must be one of"),
    ('models = ["squeezenet1_1"]\n[timing]\nmin_seconds = 9\nmax_seconds = 1\n', "min-seconds"),
    ('formats = ["onnx"]\n', "no 'models' list"),
    ('models = []\n', "non-empty"),
    ('models = ["squeezenet1_1"\n', "not valid TOML"),
])
def test_bad_values(tmp_path, text, words):
    with pytest.raises(EdgeclsError, match=words.replace("(", r"\(")):
        load_suite(write(tmp_path, text), check_models=False)


def test_unknown_model_and_missing_file(tmp_path):
    with pytest.raises(EdgeclsError, match="unknown model 'squeezenet9'"):
        load_suite(write(tmp_path, 'models = ["squeezenet9"]\n'))
    with pytest.raises(EdgeclsError, match="suite file not found"):
        load_suite(tmp_path / "nope.toml")


def test_missing_exports_are_found_from_the_manifest(tmp_path):
    suite = load_suite(write(tmp_path, VALID), check_models=False)
    model = suite.models[0]
    folder = tmp_path / "cache" / model.name
    folder.mkdir(parents=True)
    (folder / "squeezenet1_1_fp32.onnx").write_bytes(b"x")
    (folder / "manifest.json").write_text(json.dumps({"artifacts": [
        {"format": "onnx", "precision": "fp32", "file": "squeezenet1_1_fp32.onnx", "status": "passed"},
        {"format": "tflite", "precision": "int8", "file": None, "intended_file": "squeezenet1_1_int8.tflite",
         "status": "failed", "error": "parity failed: x"},
        # Another batch size of the same format and precision is a different artifact.
        {"format": "onnx", "precision": "int8", "file": "squeezenet1_1_b4_int8.onnx", "status": "passed", "batch": 4},
    ]}))
    missing, failed = _missing(suite, model, folder)
    assert missing == [("onnx", "int8"), ("tflite", "fp32")]
    assert failed == {("tflite", "int8"): "parity failed: x"}


def test_results_path_is_per_device_and_date(tmp_path):
    from datetime import datetime

    when = datetime(2026, 11, 27, 16, 0)
    first = results_path(tmp_path, "cpu-2c", when)
    assert first == tmp_path / "cpu-2c" / "2026-11-27.json"
    first.write_text("{}")
    assert results_path(tmp_path, "cpu-2c", when).name == "2026-11-27-2.json"


def test_run_suite_benchmarks_the_cache_and_lists_what_is_missing(tmp_path):
    from bench_artifacts import QUICK_TIMING, write_tiny_onnx
    from edgecls.suite import run_suite

    suite_file = write(tmp_path, """
name = "mini"
models = ["squeezenet1_1"]
formats = ["onnx"]
precisions = ["fp32", "int8"]
threads = [1]
torch_baseline = false
""" + QUICK_TIMING + """
[export]
dir = "cache"
[output]
dir = "results"
""")
    folder = tmp_path / "cache" / "squeezenet1_1"
    folder.mkdir(parents=True)
    # A stand-in artifact under the pipeline's name: the suite only needs a file the runtime opens.
    import hashlib

    artifact = write_tiny_onnx(folder / "squeezenet1_1_fp32.onnx")
    (folder / "manifest.json").write_text(json.dumps({"artifacts": [
        {"format": "onnx", "precision": "fp32", "file": "squeezenet1_1_fp32.onnx", "status": "passed",
         "model": "squeezenet1_1", "weights": "random", "parity": {"top1_agreement": 1.0, "min_cosine": 1.0},
         "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()},
    ]}))
    out = run_suite(load_suite(suite_file), export_missing=False)
    assert out.parent.parent == tmp_path / "results" and out.suffix == ".json"
    data = json.loads(out.read_text())
    (record,) = data["results"]
    assert record["precision"] == "fp32" and record["latency"]["runs"] >= 5 and record["status"] == "passed"
    assert data["suite"]["name"] == "mini"
    assert [e["error"] for e in data["errors"]] == ["not exported (--no-export)"]


def test_export_only_exports_what_is_missing_and_times_nothing(tmp_path):
    from edgecls.suite import run_suite

    suite_file = write(tmp_path, """
name = "prepare"
models = [{ name = "squeezenet1_1", resolution = 64 }]
formats = ["onnx"]
precisions = ["fp32"]
threads = [1]
[export]
dir = "cache"
calib_size = 4
[output]
dir = "results"
""")
    assert run_suite(load_suite(suite_file), export_only=True) is None
    manifest = json.loads((tmp_path / "cache" / "squeezenet1_1_r64" / "manifest.json").read_text())
    (artifact,) = manifest["artifacts"]
    assert artifact["status"] == "passed" and (tmp_path / "cache" / "squeezenet1_1_r64" / artifact["file"]).is_file()
    assert not (tmp_path / "results").exists()
