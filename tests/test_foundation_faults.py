"""Faults an export folder must survive, and bad inputs that must be one line (issue 8).

Flipped bytes are refused (sha256 against manifest.json) unless --no-verify; SIGINT and SIGKILL
mid-export leave only artifacts the manifest vouches for and no work folder (a re-run cleans a
killed run's); a full disk fails with "No space left" and keeps the previous good artifact; two
concurrent exports into one folder keep both entries. References are independent of the code
under test: hashlib for hashes, the runtimes themselves for outputs, the OS for processes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench_artifacts import TINY_TFLITE, write_tiny_onnx, write_tiny_openvino
from edgecls.bench.stats import TimingConfig, measure
from edgecls.errors import EdgeclsError
from edgecls.manifest import ManifestEntry, merge_entries, read_manifest

REPO = Path(__file__).resolve().parents[1]
EXPORT = ["export", "squeezenet1_1", "--resolution", "64", "--calib-size", "4"]
FAST_BENCH = ["--threads", "1", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "3", "--min-seconds", "0"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "200"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecls.cli", *args], capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=timeout)


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgecls.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


def _assert_folder_vouched_for(out: Path, pending: set[str] = frozenset()) -> dict:
    """Every file in ``out`` is the manifest, its lock, or a passing artifact (or side file) whose
    sha256 matches; no work folder, no partial file."""
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {}
    for entry in manifest["artifacts"]:
        if entry["status"] == "passed":
            listed[entry["file"]] = entry["sha256"]
            for side in entry["side_files"]:
                listed[side["file"]] = side["sha256"]
            # the parity inputs and PyTorch outputs kept for `bench --verify`, each with its sha256
            listed.update((entry.get("parity_data") or {}).get("sha256", {}))
    for path in out.iterdir():
        if path.name in ("manifest.json", ".manifest.lock"):
            continue
        assert not path.name.startswith(".edgecls-work-"), f"work folder left: {path.name}"
        assert "partial" not in path.name, f"partial file left: {path.name}"
        assert path.name in listed, f"{path.name} is in --out but the manifest does not vouch for it"
        assert _sha(path) == listed[path.name], f"{path.name} does not match its sha256"
    for name in listed:
        # a kill between the manifest write and the rename leaves the file journaled in the work
        # folder; the next run completes that publish (checked by the callers' re-run)
        assert (out / name).is_file() or name in pending, f"manifest lists {name}, which is missing"
    return manifest


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


def _good_folder(folder: Path) -> Path:
    """A tiny ONNX artifact and an OpenVINO IR of it, recorded in manifest.json with their sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = write_tiny_onnx(folder / "tiny_fp32.onnx")
    entries = [ManifestEntry(format="onnx", precision="fp32", status="passed", file=onnx_path.name,
                             model="tiny", sha256=_sha(onnx_path), size_bytes=onnx_path.stat().st_size)]
    try:
        xml = write_tiny_openvino(onnx_path, folder / "tiny_fp32.xml")
        from edgecls.manifest import FileRecord

        bin_path = xml.with_suffix(".bin")
        entries.append(ManifestEntry(format="openvino", precision="fp32", status="passed", file=xml.name, model="tiny",
                                     sha256=_sha(xml), size_bytes=xml.stat().st_size,
                                     side_files=[FileRecord(bin_path.name, _sha(bin_path), bin_path.stat().st_size)]))
    except ImportError:
        pass
    merge_entries(folder, entries)
    return folder


def _flip_weight_byte(path: Path) -> None:
    """Flip one byte inside the first conv weight: the file still parses, its numbers change."""
    from onnx import load, numpy_helper

    raw = numpy_helper.to_array(load(str(path)).graph.initializer[0]).tobytes()
    data = bytearray(path.read_bytes())
    at = bytes(data).find(raw) + 5
    assert at > 5
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# -- the format table --------------------------------------------------------------------------


def test_one_format_table_drives_suffixes_runtimes_and_side_files():
    from edgecls import formats
    from edgecls.runtime.registry import RUNTIME_MODULES, runtime_for

    assert formats.artifact_suffixes() == (".onnx", ".xml", ".tflite", ".pte", ".ncnn.param", ".mlpackage")
    for fmt in formats.FORMATS.values():
        assert fmt.runtime in RUNTIME_MODULES and runtime_for(Path(f"m{fmt.suffix}")) == fmt.runtime
        assert formats.format_of(f"x/m{fmt.suffix.upper()}") is fmt
    assert [p.name for p in formats.get_format("openvino").side_files(Path("a/m.xml"))] == ["m.bin"]
    # a two-part suffix: NCNN's weights must not collide with OpenVINO's m.bin
    assert [p.name for p in formats.get_format("ncnn").side_files(Path("a/m.ncnn.param"))] == [
        "m.ncnn.bin", "m.ncnn.param.json"]
    # the model's own files (its size): the weights yes, the metadata sidecar no
    assert [p.name for p in formats.get_format("ncnn").model_files(Path("a/m.ncnn.param"))] == [
        "m.ncnn.param", "m.ncnn.bin"]
    assert [p.name for p in formats.get_format("executorch").model_files(Path("a/m.pte"))] == ["m.pte"]
    assert [p.name for p in formats.get_format("openvino").model_files(Path("a/m.xml"))] == ["m.xml", "m.bin"]
    for fmt in formats.FORMATS.values():  # a metadata file is one of the files that travel with the artifact
        assert set(fmt.metadata_suffixes) <= set(fmt.side_suffixes), fmt.name
    with pytest.raises(EdgeclsError, match="cannot tell the format"):
        formats.format_of("m.bin")


# -- verified on load --------------------------------------------------------------------------


def test_flipped_bytes_are_refused_and_accepted_with_no_verify(tmp_path):
    folder = _good_folder(tmp_path / "export")
    onnx_path = folder / "tiny_fp32.onnx"
    assert json.loads(_cli("info", str(onnx_path), "--json").stdout)["model"] == "tiny"

    _flip_weight_byte(onnx_path)
    for args in (["info", str(onnx_path)], ["bench", str(onnx_path), *FAST_BENCH], ["bench", str(folder), *FAST_BENCH]):
        line = _one_error_line(_cli(*args))
        assert "tiny_fp32.onnx does not match the sha256" in line and "--no-verify" in line
    forced = _cli("info", str(onnx_path), "--json", "--no-verify")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["input"]["shape"] == [1, 3, 32, 32]
    forced = _cli("bench", str(onnx_path), "--no-verify", *FAST_BENCH)
    assert forced.returncode == 0 and "p50" in forced.stderr, forced.stderr


def test_flipped_side_file_is_refused(tmp_path):
    pytest.importorskip("openvino")
    folder = _good_folder(tmp_path / "export")
    bin_path = folder / "tiny_fp32.bin"
    data = bytearray(bin_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bin_path.write_bytes(bytes(data))
    line = _one_error_line(_cli("info", str(folder / "tiny_fp32.xml")))
    assert "tiny_fp32.bin does not match the sha256" in line
    from edgecls.runtime.run import run_artifact

    with pytest.raises(EdgeclsError, match="tiny_fp32.bin does not match"):
        run_artifact(folder / "tiny_fp32.xml", np.zeros((1, 3, 32, 32), np.float32))


# -- interrupts --------------------------------------------------------------------------------


def _wait_for_first_artifact(proc: subprocess.Popen, out: Path, limit: float = 900) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if any(e["status"] == "passed" for e in json.loads((out / "manifest.json").read_text())["artifacts"]):
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no artifact was published in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_signal_mid_export_then_rerun(tmp_path, monkeypatch, sig):
    out = tmp_path / "out"
    # The run's control folder (child protocol files) lives in the system temp folder: a temp
    # folder of the test's own shows what a killed run leaves there and that the re-run removes it.
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    proc = _popen(*EXPORT, "--formats", "onnx,openvino", "--int8", "--out", str(out))
    _wait_for_first_artifact(proc, out)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stderr[-2000:]
        assert stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in stderr
        assert not list(out.glob(".edgecls-work-*"))
        assert not list(temp.glob("edgecls-export-*"))
    else:
        assert proc.returncode == -signal.SIGKILL
        left = list(temp.glob("edgecls-export-*"))
        assert len(left) == 1 and (left[0] / "pid").read_text().split()[0] == str(proc.pid)
    # No converter runs on: its command line names the work folder inside --out.
    deadline = time.monotonic() + 30
    while _processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_mentioning(str(out))
    manifest = _assert_folder_vouched_for_except_work(out, allow_work=sig == signal.SIGKILL)
    assert any(e["status"] == "passed" for e in manifest["artifacts"])

    rerun = _cli(*EXPORT, "--formats", "onnx", "--out", str(out))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    manifest = _assert_folder_vouched_for(out)
    assert ("onnx", "fp32") in {(e["format"], e["precision"]) for e in manifest["artifacts"] if e["status"] == "passed"}
    if sig == signal.SIGKILL:
        said = rerun.stdout + rerun.stderr
        assert said.count("left by an interrupted run") == 2, said  # the work folder and the control folder
    assert not list(temp.glob("edgecls-export-*"))
    assert not list(out.glob(".edgecls-work-*"))


def test_stale_folder_of_a_reused_pid_is_removed(tmp_path, monkeypatch):
    """A pid file naming a live process with another start time (the kernel reused the pid) is stale."""
    from edgecls.export import pipeline

    monkeypatch.setattr(pipeline.tempfile, "tempdir", str(tmp_path))
    live = tmp_path / "edgecls-export-reused"
    live.mkdir()
    (live / "pid").write_text(f"{os.getppid()} 1")  # the parent is alive; it did not start at tick 1
    mine = tmp_path / "edgecls-export-mine"
    mine.mkdir()
    pipeline._write_owner(mine)
    running = tmp_path / "edgecls-export-running"
    running.mkdir()
    (running / "pid").write_text(f"{os.getppid()} {pipeline._process_start(os.getppid())}")
    said = []
    pipeline.clean_stale_control_dirs(said.append)
    assert not live.exists() and mine.exists() and running.exists(), said
    assert len(said) == 1 and "edgecls-export-reused" in said[0]


def _assert_folder_vouched_for_except_work(out: Path, allow_work: bool) -> dict:
    if allow_work:  # SIGKILL leaves the work folder (cleaned by the next run); check the rest
        work = list(out.glob(".edgecls-work-*"))
        assert len(work) == 1 and (work[0] / "pid").is_file()
        journal = work[0] / "publishing.json"  # edgecls.export.pipeline.JOURNAL
        pending = set(json.loads(journal.read_text()).get("files", [])) if journal.is_file() else set()
        moved = out.parent / "work-aside"
        shutil.move(str(work[0]), moved)
        try:
            return _assert_folder_vouched_for(out, pending)
        finally:
            shutil.move(str(moved), work[0])
    return _assert_folder_vouched_for(out)


# -- full disk ---------------------------------------------------------------------------------


def _tmpfs(path: Path, size: str):
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'}): the full-disk test needs one")
    return path


@pytest.fixture
def small_disk(tmp_path):
    mounts = []

    def make(size: str) -> Path:
        path = _tmpfs(tmp_path / f"disk{len(mounts)}", size)
        mounts.append(path)
        return path

    yield make
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_disk_at_setup_is_one_line_and_keeps_the_good_artifact(small_disk):
    out = small_disk("3m")
    _good_folder(out)
    before = {p.name: _sha(p) for p in out.iterdir() if p.name != ".manifest.lock"}
    line = _one_error_line(_cli(*EXPORT, "--formats", "onnx", "--out", str(out)))
    assert "No space left on device" in line and str(out) in line
    _assert_folder_vouched_for(out)
    assert {p.name: _sha(p) for p in out.iterdir() if p.name != ".manifest.lock"} == before


def test_full_disk_fails_only_the_artifact_that_does_not_fit(small_disk):
    # 10 MB: the work files (model, calibration and parity arrays, ~6.6 MB) fit, a 5 MB fp32
    # ONNX (written to a scratch copy and then staged) does not.
    out = small_disk("10m")
    _good_folder(out)
    good = out / "tiny_fp32.onnx"
    sha_before = _sha(good)
    proc = _cli(*EXPORT, "--formats", "onnx", "--out", str(out))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    manifest = _assert_folder_vouched_for(out)
    failed = [e for e in manifest["artifacts"] if e["format"] == "onnx" and e["model"] == "squeezenet1_1"]
    assert len(failed) == 1, proc.stdout[-3000:]
    (failed,) = failed
    assert failed["status"] == "failed" and "No space left on device" in failed["error"]
    assert "\n" not in failed["error"]
    assert _sha(good) == sha_before


# -- concurrent exports ------------------------------------------------------------------------


def _merge_many(folder: str, tag: str, count: int, barrier) -> None:
    barrier.wait()
    for i in range(count):
        merge_entries(Path(folder), [ManifestEntry(format=tag, precision="fp32", status="failed",
                                                   intended_file=f"{tag}_{i}.x", error="synthetic")])


def test_concurrent_merges_keep_every_entry_20_times(tmp_path):
    context = multiprocessing.get_context("fork")  # real processes; fork skips 40 interpreter starts
    for round_ in range(20):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        barrier = context.Barrier(2)
        workers = [context.Process(target=_merge_many, args=(str(folder), tag, 5, barrier)) for tag in ("a", "b")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
        names = sorted(e.intended_file for e in read_manifest(folder).entries)
        assert names == sorted(f"{t}_{i}.x" for t in "ab" for i in range(5)), f"round {round_}"
        assert not [p for p in folder.iterdir() if "partial" in p.name]


def test_two_concurrent_cli_exports_into_one_folder(tmp_path):
    out = tmp_path / "out"
    procs = [_popen(*EXPORT, "--formats", fmt, "--out", str(out)) for fmt in ("onnx", "openvino")]
    for proc in procs:
        _, stderr = proc.communicate(timeout=1200)
        assert proc.returncode == 0, stderr[-2000:]
    manifest = _assert_folder_vouched_for(out)
    assert sorted(e["format"] for e in manifest["artifacts"] if e["status"] == "passed") == ["onnx", "openvino"]


# -- bad inputs --------------------------------------------------------------------------------


def test_resolution_zero_is_refused(tmp_path):
    line = _one_error_line(_cli(*EXPORT[:2], "--resolution", "0", "--out", str(tmp_path / "o")))
    assert "--resolution must be a positive integer, got 0" in line
    assert not (tmp_path / "o").exists()


def test_threads_beyond_the_cpus_are_refused(tmp_path):
    onnx_path = write_tiny_onnx(tmp_path / "tiny.onnx")
    line = _one_error_line(_cli("bench", str(onnx_path), "--threads", "999"))
    assert f"this machine has {os.cpu_count()} CPUs" in line


def test_max_seconds_bounds_warmup_and_timing_together():
    """A 1 s inference with a 5 s bound: warm-up and timed runs share the 5 s (fake clock)."""
    now = [0]

    def clock() -> int:
        return now[0]

    def infer(_):
        now[0] += 1_000_000_000

    timings = measure(infer, None, TimingConfig(warmup_runs=100, warmup_seconds=0, min_runs=100, min_seconds=0,
                                                max_seconds=5), clock=clock)
    assert timings.warmup_runs + len(timings.times_ns) == 6  # 5 s of runs, plus the one timed run always made
    assert timings.stopped_by == "max-seconds"


def test_unwritable_json_is_refused_before_measuring(tmp_path):
    onnx_path = write_tiny_onnx(tmp_path / "tiny.onnx")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    proc = _cli("bench", str(onnx_path), *FAST_BENCH, "--json", str(blocker / "results.json"))
    line = _one_error_line(proc)
    assert "cannot write --json" in line and "p50" not in proc.stdout + proc.stderr


def test_openvino_missing_bin_names_the_file(tmp_path):
    pytest.importorskip("openvino")
    xml = write_tiny_openvino(write_tiny_onnx(tmp_path / "tiny.onnx"), tmp_path / "tiny.xml")
    xml.with_suffix(".bin").unlink()
    for args in (["info", str(xml)], ["bench", str(xml), *FAST_BENCH]):
        line = _one_error_line(_cli(*args))
        assert "tiny.bin is missing" in line and "core.cpp" not in line


def test_openvino_damaged_bin_gives_the_cause_not_the_source_line(tmp_path):
    pytest.importorskip("openvino")
    xml = write_tiny_openvino(write_tiny_onnx(tmp_path / "tiny.onnx"), tmp_path / "tiny.xml")
    xml.with_suffix(".bin").write_bytes(b"\0" * 16)
    line = _one_error_line(_cli("info", str(xml)))
    assert "OpenVINO cannot" in line and not line.rstrip().endswith(":") and "Exception from src" not in line


def test_typo_in_a_format_table_fails_before_anything_is_built(tmp_path):
    profile = tmp_path / "typo.toml"
    profile.write_text('formats = ["onnx"]\nprecisions = ["fp32", "int8"]\n\n[onnx.int8]\nactivaton_type = "int8"\n')
    proc = _cli(*EXPORT, "--target", str(profile), "--out", str(tmp_path / "o"))
    line = _one_error_line(proc)
    assert "activaton_type" in line and "[onnx.int8]" in line
    assert "building" not in proc.stdout and not (tmp_path / "o").exists()


# -- isolation ---------------------------------------------------------------------------------


def crash_now(payload: dict) -> dict:  # run in a child by the isolation test
    import ctypes

    print("about to crash", flush=True)
    ctypes.string_at(0)
    return {}


def user_error(payload: dict) -> dict:
    from edgecls.errors import InvalidArgumentError

    raise InvalidArgumentError(f"bad value {payload['value']}")


def test_isolation_reports_crashes_and_user_errors_in_one_protocol():
    from edgecls.errors import InvalidArgumentError
    from edgecls.isolation import run_isolated

    crashed = run_isolated(f"{__name__}:crash_now", {}, timeout=120)
    assert not crashed.ok and crashed.crash == "killed by signal 11 (SIGSEGV)"
    assert "about to crash" in crashed.output_tail and "\n" not in crashed.describe()
    refused = run_isolated(f"{__name__}:user_error", {"value": 3}, timeout=120)
    with pytest.raises(InvalidArgumentError, match="bad value 3"):
        refused.raise_for_user_error()
    ok = run_isolated("edgecls.runtime.run:describe_artifact", {"path": str(TINY_TFLITE)}, timeout=120)
    assert ok.ok and ok.value["input"]["shape"] == [1, 3, 32, 32]


# -- TFLite metadata ---------------------------------------------------------------------------


def test_tflite_metadata_round_trip_keeps_the_model():
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    from edgecls.runtime.litert import add_tflite_metadata, read_tflite_metadata

    original = TINY_TFLITE.read_bytes()
    values = {"name": "tiny", "resolution": "32", "mean": "[0.5, 0.5, 0.5]", "layout": "NCHW", "labels": '["a", "b"]'}
    tagged = add_tflite_metadata(original, values)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tagged-{os.getpid()}.tflite"
    path.write_bytes(tagged)
    try:
        assert read_tflite_metadata(path) == values
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
        outputs = []
        for content in (original, tagged):
            interpreter = Interpreter(model_content=content)
            interpreter.allocate_tensors()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        np.testing.assert_array_equal(outputs[0], outputs[1])
    finally:
        path.unlink(missing_ok=True)
