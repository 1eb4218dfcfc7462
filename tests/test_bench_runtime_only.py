"""`edgecls bench` and `edgecls info` where torch cannot be imported (the `runtime` extra).

Each test runs the real CLI in a subprocess whose PYTHONPATH starts with a shim folder holding a
`torch` package that raises ModuleNotFoundError, exactly what a machine without torch raises.
The measurement children inherit PYTHONPATH, so they run without torch too. The same trick with
an `onnxruntime` shim checks the message for a runtime that is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench_artifacts import TINY_MACS, TINY_TFLITE, write_tiny_onnx, write_tiny_openvino

REPO = Path(__file__).resolve().parents[1]
FAST = ["--threads", "1", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0"]


def _shim(folder: Path, *packages: str) -> Path:
    for package in packages:
        (folder / package).mkdir(parents=True, exist_ok=True)
        (folder / package / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{package}' (blocked by the test)\", name='{package}')\n"
        )
    return folder


def _cli(args: list[str], shim: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(REPO)])
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "edgecls.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime_only")
    onnx_path = write_tiny_onnx(folder / "tiny.onnx")
    out = {"onnx": onnx_path}
    try:
        out["xml"] = write_tiny_openvino(onnx_path, folder / "tiny.xml")
    except ImportError:
        pass
    out["tflite"] = TINY_TFLITE
    return out


def test_shim_really_blocks_torch(tmp_path):
    shim = _shim(tmp_path / "shim", "torch")
    env = dict(os.environ, PYTHONPATH=str(shim))
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr


def test_bench_every_format_without_torch(tmp_path, artifacts):
    shim = _shim(tmp_path / "shim", "torch")
    files = [str(p) for p in artifacts.values()]
    out = tmp_path / "results.json"
    result = _cli(["bench", *files, *FAST, "--json", str(out)], shim, tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert not data["errors"], data["errors"]
    runtimes = {r["runtime"] for r in data["results"]}
    assert runtimes == {"onnxruntime", "litert"} | ({"openvino"} if "xml" in artifacts else set())
    for record in data["results"]:
        assert record["latency"]["runs"] >= 5
        assert record["macs"] == TINY_MACS  # counted from the graph: the model is unknown, torch is absent
        assert "torch" not in (record["macs_source"] or "")
    assert "p50" in result.stdout


def test_info_every_format_without_torch(tmp_path, artifacts):
    shim = _shim(tmp_path / "shim", "torch")
    for path in artifacts.values():
        result = _cli(["info", str(path), "--json"], shim, tmp_path)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["macs"] == TINY_MACS
        assert data["input"]["shape"] == [1, 3, 32, 32]


@pytest.mark.parametrize("kind, package", [("onnx", "onnxruntime"), ("xml", "openvino"), ("tflite", "ai_edge_litert")])
def test_missing_runtime_names_the_extra(tmp_path, artifacts, kind, package):
    if kind not in artifacts:
        pytest.skip(f"no {kind} artifact (its converter is not installed)")
    shim = _shim(tmp_path / "shim", "torch", package)
    result = _cli(["bench", str(artifacts[kind]), *FAST], shim, tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "pip install 'edgecls[runtime]'" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_model_name_without_torch_names_the_extra(tmp_path):
    shim = _shim(tmp_path / "shim", "torch")
    result = _cli(["bench", "squeezenet1_1", *FAST], shim, tmp_path)
    assert result.returncode == 2
    assert "edgecls[export]" in result.stderr and "Traceback" not in result.stderr
