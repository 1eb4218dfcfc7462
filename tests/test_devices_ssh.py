"""`edgecls bench --device ssh://...` against a real OpenSSH server on 127.0.0.1.

The "device" is this machine reached over SSH as root, with its own throwaway host and user
keys; its Python is this test's interpreter with `runtimes = "existing"`, so edgecls installs a
wheel of this checkout into the device cache (a tmp dir) and runs from there, not from the
checkout. References are independent of the code under test: the artifact's name on the device
is checked against hashlib's sha256 of the file, the statistics against a local `edgecls bench`
of the same artifact with the same flags, the device record against this machine's /proc/cpuinfo.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench_artifacts import TINY_TFLITE, write_tiny_onnx, write_tiny_openvino
from sshd import free_port, keygen, start_sshd

REPO = Path(__file__).resolve().parents[1]
FAST = ["--threads", "1", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0",
        "--max-seconds", "5"]


def _cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "edgecls.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("device_cache")


def _device_url(sshd, cache: Path, **extra) -> str:
    return sshd.url(python=sys.executable, runtimes="existing", cache=str(cache), **extra)


def test_bench_over_ssh_matches_a_local_run(sshd, cache, tmp_path):
    remote = _cli(["bench", str(TINY_TFLITE), "--device", _device_url(sshd, cache), "--json", "remote.json", *FAST],
                  tmp_path)
    assert remote.returncode == 0, remote.stderr[-2000:]
    local = _cli(["bench", str(TINY_TFLITE), "--json", "local.json", *FAST], tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    remote_data = json.loads((tmp_path / "remote.json").read_text())
    local_data = json.loads((tmp_path / "local.json").read_text())

    (record,) = remote_data["results"]
    (local_record,) = local_data["results"]
    # Every statistic of a local run is there, with the same meaning.
    assert set(local_record) <= set(record)
    assert set(local_record["latency"]) == set(record["latency"])
    assert record["latency"]["runs"] >= 5 and len(record["raw_ns"]) == record["latency"]["runs"]
    assert record["latency"]["p50_ms"] == pytest.approx(sorted(record["raw_ns"])[2] / 1e6)  # nearest rank 3 of 5
    assert record["macs"] == local_record["macs"] and record["output_shape"] == [1, 10]
    assert record["file"] == str(TINY_TFLITE)

    # Shipped under its sha256, in the device cache.
    sha = hashlib.sha256(TINY_TFLITE.read_bytes()).hexdigest()
    assert record["remote_file"] == str(cache / "artifacts" / sha / TINY_TFLITE.name)
    assert (cache / "artifacts" / sha / ".complete").is_file()

    # The device as it describes itself, and the edgecls that measured: the wheel in the cache.
    (name,) = remote_data["devices"]
    entry = remote_data["devices"][name]
    assert entry["status"] == "ok" and record["device_name"] == name
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
    assert entry["description"]["cpu"] == model and entry["description"]["arch"] == os.uname().machine
    assert entry["description"]["slug"] == local_data["device"]["slug"]
    assert Path(entry["agent"]["edgecls_path"]).is_relative_to(cache / "edgecls")
    assert "== " + name in remote.stdout and "p50" in remote.stdout


def test_openvino_side_file_and_cache_reuse(sshd, cache, tmp_path):
    onnx_path = write_tiny_onnx(tmp_path / "tiny.onnx")
    xml_path = write_tiny_openvino(onnx_path, tmp_path / "tiny.xml")
    url = _device_url(sshd, cache)
    first = _cli(["bench", str(xml_path), str(onnx_path), "--device", url, "--json", "a.json", *FAST], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    records = json.loads((tmp_path / "a.json").read_text())["results"]
    assert sorted(r["runtime"] for r in records) == ["onnxruntime", "openvino"]
    xml_remote = Path(next(r["remote_file"] for r in records if r["runtime"] == "openvino"))
    assert (xml_remote.parent / "tiny.bin").read_bytes() == xml_path.with_suffix(".bin").read_bytes()
    stamp = (xml_remote.parent / ".complete").stat().st_mtime_ns
    second = _cli(["bench", str(xml_path), "--device", url, *FAST], tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (xml_remote.parent / ".complete").stat().st_mtime_ns == stamp  # not shipped again
    assert len(list((cache / "edgecls").iterdir())) == 1  # one install of this checkout


def test_bad_devices_one_line_each_and_the_good_one_unaffected(sshd, cache, tmp_path):
    wrong_key = keygen(tmp_path / "not_authorized")
    shim = tmp_path / "shim"
    for package in ("ai_edge_litert", "tflite_runtime", "tensorflow"):
        (shim / package).mkdir(parents=True)
        (shim / package / "__init__.py").write_text(f"raise ModuleNotFoundError('blocked', name='{package}')\n")
    no_litert = tmp_path / "python-without-litert"
    no_litert.write_text(f'#!/bin/sh\nPYTHONPATH="{shim}${{PYTHONPATH:+:$PYTHONPATH}}" exec {sys.executable} "$@"\n')
    no_litert.chmod(0o755)
    common = (f'known_hosts = "{sshd.known_hosts}"\ncache = "{cache}"\nruntimes = "existing"\n'
              f'connect_timeout = 5\n')
    entries = {
        "good": (f"ssh://root@127.0.0.1:{sshd.port}", sshd.user_key, sys.executable),
        "unreachable": (f"ssh://root@127.0.0.1:{free_port()}", sshd.user_key, sys.executable),
        "wrongkey": (f"ssh://root@127.0.0.1:{sshd.port}", wrong_key, sys.executable),
        "nopython": (f"ssh://root@127.0.0.1:{sshd.port}", sshd.user_key, "/nonexistent/bin/python3"),
        "noruntime": (f"ssh://root@127.0.0.1:{sshd.port}", sshd.user_key, str(no_litert)),
    }
    devices_file = tmp_path / "devices.toml"
    devices_file.write_text("".join(
        f'[[device]]\nname = "{name}"\nssh = "{url}"\nkey = "{key}"\npython = "{python}"\n{common}\n'
        for name, (url, key, python) in entries.items()))
    args = ["bench", str(TINY_TFLITE), "--devices", str(devices_file), "--json", "out.json", *FAST]
    for name in entries:
        args += ["--device", name]
    result = _cli(args, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    causes = {
        "unreachable": "connection refused",
        "wrongkey": "refused the key",
        "nopython": "no Python at /nonexistent/bin/python3",
        "noruntime": "LiteRT",
    }
    for name, cause in causes.items():
        mine = [line for line in lines if line.startswith(f"error: device {name} (")]
        assert len(mine) == 1 and cause in mine[0], (name, lines)
    assert len(lines) == len(causes)
    data = json.loads((tmp_path / "out.json").read_text())
    assert [r["device_name"] for r in data["results"]] == ["good"]
    assert data["devices"]["good"]["status"] == "ok"
    assert {n for n, e in data["devices"].items() if e["status"] == "failed"} == {"unreachable", "wrongkey", "nopython"}
    # A missing runtime fails the measurement, not the device: it answered and described itself.
    assert data["devices"]["noruntime"]["description"]["arch"] == os.uname().machine


def test_device_urls_and_files_are_checked(tmp_path):
    bad = _cli(["bench", str(TINY_TFLITE), "--device", "ssh://root@127.0.0.1:2222?pyton=/usr/bin/python3"], tmp_path)
    assert bad.returncode == 2 and "unknown query key 'pyton'" in bad.stderr
    (tmp_path / "devices.toml").write_text('[[device]]\nname = "pi"\nssh = "ssh://pi@pi.local"\nthread = [1]\n')
    typo = _cli(["bench", str(TINY_TFLITE), "--devices", "devices.toml", "--device", "pi"], tmp_path)
    assert typo.returncode == 2 and "unknown key 'thread'" in typo.stderr
    (tmp_path / "devices.toml").write_text('[[device]]\nname = "pi"\nssh = "ssh://pi@pi.local"\nthreads = [1]\n')
    unknown = _cli(["bench", str(TINY_TFLITE), "--devices", "devices.toml", "--device", "pi5"], tmp_path)
    assert unknown.returncode == 2 and "unknown device 'pi5'" in unknown.stderr and "pi" in unknown.stderr


def _tiny_export_folder(folder: Path, scale_reference: float = 1.0) -> Path:
    """An export folder as the pipeline writes it: artifact, manifest with its parity rule, parity inputs and
    reference outputs. The reference is computed by onnx's own ReferenceEvaluator, not by any runtime."""
    import numpy as np
    from onnx.reference import ReferenceEvaluator

    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = write_tiny_onnx(folder / "tiny_fp32.onnx")
    inputs = np.random.default_rng(1).standard_normal((6, 3, 32, 32)).astype(np.float32)
    reference = np.concatenate([ReferenceEvaluator(str(onnx_path)).run(None, {"input": x[None]})[0] for x in inputs])
    np.save(folder / "tiny_r32.parity-inputs.npy", inputs)
    np.save(folder / "tiny_r32.reference.npy", reference * scale_reference)
    (folder / "manifest.json").write_text(json.dumps({"artifacts": [{
        "file": onnx_path.name, "format": "onnx", "precision": "fp32", "status": "passed", "model": "tiny",
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "parity": {"max_abs_diff": 0.0, "max_rel_diff": 1e-7, "min_cosine": 1.0, "mean_cosine": 1.0,
                   "top1_agreement": 1.0, "inputs": 6},
        "parity_rule": {"precision": "fp32", "max_rel_diff": 1e-4},
        "parity_data": {"inputs": "tiny_r32.parity-inputs.npy", "reference": "tiny_r32.reference.npy"}}]}))
    return folder


def test_verify_recomputes_parity_on_the_device(sshd, cache, tmp_path):
    good = _tiny_export_folder(tmp_path / "good")
    result = _cli(["bench", str(good), "--device", _device_url(sshd, cache), "--json", "v.json", *FAST], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = json.loads((tmp_path / "v.json").read_text())["results"]
    check = record["device_parity"]
    assert check["checked"] and check["passed"] and check["figures"]["inputs"] == 6
    assert check["figures"]["max_rel_diff"] <= 1e-5 and check["export_figures"]["max_rel_diff"] == 1e-7
    assert "parity here" in result.stdout and "passed" in result.stdout

    # An artifact that computes something else than its reference fails its rule there: exit 1, said why.
    bad = _tiny_export_folder(tmp_path / "bad", scale_reference=1.01)
    failed = _cli(["bench", str(bad), "--device", _device_url(sshd, cache), *FAST], tmp_path)
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert "FAILED: max relative diff" in failed.stdout
    # The same check runs locally with --verify.
    local = _cli(["bench", str(bad), "--verify", *FAST], tmp_path)
    assert local.returncode == 1 and "FAILED: max relative diff" in local.stdout
