"""Device pools: a suite over two real sshd endpoints, one killed mid-suite, and the "any" mode.

Both "devices" are this machine over SSH on two ports (each its own sshd, keys and device
cache). The suite exports one small model at 32 px (ONNX fp32 + fp16) on this machine and measures
it at 1 and 2 threads on both devices; when device b reports its first result, its sshd and
every session it forked are killed, as a board dropping off the network. Expected: b is retried,
then reported failed with its cause; what b measured before stays; a completes; `edgecls report`
makes one merged table with a device column.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from bench_artifacts import QUICK_TIMING, TINY_TFLITE, write_tiny_onnx
from sshd import free_port, start_sshd

REPO = Path(__file__).resolve().parents[1]


def _device_entry(name: str, sshd, cache: Path) -> str:
    return (f'[[device]]\nname = "{name}"\nssh = "ssh://root@127.0.0.1:{sshd.port}"\nkey = "{sshd.user_key}"\n'
            f'known_hosts = "{sshd.known_hosts}"\npython = "{sys.executable}"\nruntimes = "existing"\n'
            f'cache = "{cache}"\nconnect_timeout = 5\n\n')


SUITE = """
name = "pool"
models = [{ name = "mobilenetv1_025", resolution = 32 }]
formats = ["onnx"]
precisions = ["fp32", "fp16"]
threads = [1, 2]
torch_baseline = false
weights = "random"
devices = ["a", "b"]
devices_file = "devices.toml"
""" + QUICK_TIMING + """
[export]
dir = "exports"
calib_size = 4

[output]
dir = "results"
"""


def test_suite_over_two_devices_one_killed_midway(tmp_path):
    a = start_sshd(tmp_path / "sshd_a")
    b = start_sshd(tmp_path / "sshd_b")
    try:
        (tmp_path / "devices.toml").write_text(_device_entry("a", a, tmp_path / "cache_a")
                                               + _device_entry("b", b, tmp_path / "cache_b"))
        (tmp_path / "suite.toml").write_text(SUITE)
        env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200", OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-m", "edgecls.cli", "suite", "run", "suite.toml"], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout: list[str] = []
        reader = threading.Thread(target=lambda: stdout.extend(proc.stdout), daemon=True)
        reader.start()
        stderr, killed = [], False
        for line in proc.stderr:
            stderr.append(line)
            if not killed and line.strip().startswith("b: ") and "p50" in line:
                b.stop()  # device b drops off the network after its first measurement
                killed = True
        proc.wait(timeout=900)
        reader.join(timeout=10)
        log = "".join(stderr)
        assert proc.returncode == 0, log[-3000:]
        assert killed, log[-3000:]
    finally:
        a.stop()
        b.stop()

    (results_path,) = (tmp_path / "results" / "a+b").glob("*.json")
    data = json.loads(results_path.read_text())
    by_device = {name: [r for r in data["results"] if r["device_name"] == name] for name in ("a", "b")}
    assert len(by_device["a"]) == 4  # 2 precisions x 2 thread counts
    assert len(by_device["b"]) >= 1  # what b measured before it dropped is kept
    b_errors = [e for e in data["errors"] if e.get("device") == "b"]
    assert len(by_device["b"]) + len(b_errors) == 4  # every measurement of b: measured or listed failed
    assert all(e["error"].startswith("device b (ssh://root@127.0.0.1:") for e in b_errors)
    assert data["devices"]["b"]["status"] == "failed" and data["devices"]["a"]["status"] == "ok"
    assert "retrying" in log
    assert {(r["precision"], r["threads"]) for r in by_device["a"]} == {("fp32", 1), ("fp32", 2), ("fp16", 1),
                                                                          ("fp16", 2)}
    # Parity recomputed on the device from the inputs and PyTorch outputs the export kept (once per artifact).
    for record in by_device["a"]:
        check = record["device_parity"]
        assert check["checked"] and check["passed"], check
        assert check["figures"]["inputs"] == record["parity"]["inputs"]

    report = subprocess.run([sys.executable, "-m", "edgecls.cli", "report", str(results_path), "--out", "report",
                             "--no-plots"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    with open(tmp_path / "report" / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({row["device"] for row in rows}) == ["a", "b"]
    assert sum(row["device"] == "a" for row in rows) == 4
    assert sum(row["device"] == "b" for row in rows) == len(by_device["b"])
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "**a** (" in markdown and "**b** (" in markdown


def test_any_mode_moves_work_off_a_dead_device(tmp_path):
    from edgecls.bench.harness import resolve_targets
    from edgecls.bench.stats import TimingConfig
    from edgecls.devices.config import parse_url
    from edgecls.devices.pool import run_on_devices

    live = start_sshd(tmp_path / "sshd")
    try:
        query = f"key={live.user_key}&known_hosts={live.known_hosts}&python={sys.executable}&runtimes=existing" \
                f"&cache={tmp_path / 'cache'}&connect_timeout=5"
        good = parse_url(f"ssh://root@127.0.0.1:{live.port}?{query}")
        dead = parse_url(f"ssh://root@127.0.0.1:{free_port()}?{query}")
        onnx_path = write_tiny_onnx(tmp_path / "tiny.onnx")
        targets = resolve_targets([str(TINY_TFLITE), str(onnx_path)])
        events = []
        results = run_on_devices([dead, good], targets, [1], timing=TimingConfig(1, 0, 5, 0, 5), mode="any",
                                 retries=1, backoff=0.1, on_event=events.append)
    finally:
        live.stop()
    # Each measurement once, all on the device that answers; the dead one is reported with its cause.
    assert sorted(Path(r["file"]).name for r in results["results"]) == ["bench_tiny.tflite", "tiny.onnx"]
    assert {r["device_name"] for r in results["results"]} == {good.name}
    assert results["errors"] == []
    assert results["devices"][dead.name]["status"] == "failed"
    assert "connection refused" in results["devices"][dead.name]["error"]
    assert [e.kind for e in events].count("retry") >= 1
