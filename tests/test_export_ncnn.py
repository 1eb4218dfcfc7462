"""NCNN export (pnnx -> .param + .bin) and the ncnn runner, against PyTorch on held-out built-in photos.

mobilenetv2_035 at 32 px: its inverted residuals (adds, ReLU6 clips, depthwise convs) are the
layer kinds the zoo's CNNs are made of, and pnnx converts it in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pnnx")
pytest.importorskip("ncnn")

import torch  # noqa: E402

import edgecls  # noqa: E402
from export_case import export_case  # noqa: E402
from edgecls.errors import InvalidArgumentError  # noqa: E402
from edgecls.export.base import ExportRequest  # noqa: E402
from edgecls.parity import FP16_MIN_COSINE, FP32_MAX_REL_DIFF, compare  # noqa: E402
from edgecls.export.registry import exporter_class  # noqa: E402
from edgecls.runtime.run import run_artifact  # noqa: E402

MODEL = "mobilenetv2_035"
RESOLUTION = 32


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return export_case(MODEL, RESOLUTION, 4, tmp_path_factory.mktemp("ncnn"))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ncnn_matches_pytorch(case, precision):
    request, sets, reference, workdir = case
    exporter = exporter_class("ncnn")()
    dest = workdir / f"m_{precision}.ncnn.param"
    exporter.export(request, precision, dest)
    assert sorted(p.name for p in exporter.side_files(dest)) == [f"m_{precision}.ncnn.bin",
                                                                 f"m_{precision}.ncnn.param.json"]
    assert all(p.is_file() for p in exporter.side_files(dest))
    outputs, described = run_artifact(dest, sets.parity)
    figures = compare(reference, outputs)
    assert described["runtime"] == "ncnn" and described["input"]["shape"] == [1, 3, RESOLUTION, RESOLUTION]
    if precision == "fp32":
        assert figures.max_rel_diff <= FP32_MAX_REL_DIFF
    else:
        assert figures.min_cosine >= FP16_MIN_COSINE
        # weights stored as float16: half the float32 .bin
        fp32 = workdir / "m_fp32.ncnn.param"
        if not fp32.exists():  # the fp32 case may have run in another worker or not at all
            exporter.export(request, "fp32", fp32)
        assert dest.with_suffix(".bin").stat().st_size < 0.6 * fp32.with_suffix(".bin").stat().st_size
    meta = json.loads((workdir / f"m_{precision}.ncnn.param.json").read_text())
    assert meta["input_shape"] == [3, RESOLUTION, RESOLUTION] and meta["precision"] == precision
    assert len(meta["labels"]) == 1000 and meta["edgecls_version"] == edgecls.__version__


def test_batch_and_int8_refused(case):
    request = case[0]
    exporter = exporter_class("ncnn")()
    with pytest.raises(InvalidArgumentError, match="int8"):
        exporter.export(request, "int8", Path("unused.param"))
    batched = ExportRequest(**{**request.__dict__, "batch": 2})
    with pytest.raises(InvalidArgumentError, match="--batch 1"):
        exporter.export(batched, "fp32", Path("unused.param"))


def test_missing_packages_name_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['pnnx'] = None; sys.modules['ncnn'] = None\n"
        "from edgecls.errors import MissingDependencyError\n"
        "from edgecls.export.registry import exporter_class\n"
        "from edgecls.runtime.registry import runner_class\n"
        "for call in (lambda: exporter_class('ncnn')().export(None, 'fp32', None),\n"
        "             lambda: runner_class('ncnn')('x.param')):\n"
        "    try:\n"
        "        call()\n"
        "    except MissingDependencyError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={"PYTHONPATH": ":".join(sys.path)}).stdout.splitlines()
    assert len(out) == 2 and all("pip install 'edgecls[ncnn]'" in line for line in out)


def test_manifest_size_counts_param_and_bin(tmp_path):
    """The manifest's size_bytes is the model's: .param + .bin (the weights live in the .bin), as
    the format table's model files say; the metadata sidecar is a side file, not counted."""
    import os

    from edgecls.export.pipeline import ExportConfig, run_export
    from edgecls.formats import artifact_bytes

    run = run_export(ExportConfig(model=MODEL, formats=["ncnn"], resolution=RESOLUTION, calib_size=4, out=tmp_path,
                                  random_weights=True))
    (entry,) = run.artifacts
    assert entry["status"] == "passed", entry["error"]
    param = tmp_path / entry["file"]
    weights = param.with_suffix(".bin")
    expected = os.path.getsize(param) + os.path.getsize(weights)
    assert os.path.getsize(weights) > 10 * os.path.getsize(param)  # so counting the .param alone cannot pass
    manifest = json.loads((tmp_path / "manifest.json").read_text())["artifacts"][0]
    assert entry["size_bytes"] == manifest["size_bytes"] == expected == artifact_bytes(param)
    sides = {s["file"]: s["size_bytes"] for s in manifest["side_files"]}
    assert sides == {weights.name: os.path.getsize(weights),
                     param.name + ".json": os.path.getsize(str(param) + ".json")}
