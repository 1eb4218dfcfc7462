"""NCNN export (pnnx -> .param + .bin) and the ncnn runner, against PyTorch on held-out built-in photos.

mobilenetv2_035 at 32 px: its inverted residuals (adds, ReLU6 clips, depthwise convs) are the
layer kinds the zoo's CNNs are made of, and pnnx converts it in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pnnx")
pytest.importorskip("ncnn")

import edgecls  # noqa: E402
from export_case import case_fixture, check_converted, missing_dependency_messages  # noqa: E402
from edgecls.errors import InvalidArgumentError  # noqa: E402
from edgecls.export.base import ExportRequest  # noqa: E402
from edgecls.parity import FP16_MIN_COSINE  # noqa: E402
from edgecls.export.registry import exporter_class  # noqa: E402

MODEL = "mobilenetv2_035"
RESOLUTION = 32

case = case_fixture(MODEL, RESOLUTION, 4)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ncnn_matches_pytorch(case, precision):
    # fp16 weights are stored as float16: about half the float32 .bin
    exporter, dest = check_converted(case, "ncnn", precision, "m_{}.ncnn.param", FP16_MIN_COSINE, 0.6,
                                     model_file=lambda param: param.with_suffix(".bin"))
    assert sorted(p.name for p in exporter.side_files(dest)) == [f"m_{precision}.ncnn.bin",
                                                                 f"m_{precision}.ncnn.param.json"]
    assert all(p.is_file() for p in exporter.side_files(dest))
    meta = json.loads(dest.with_name(dest.name + ".json").read_text())
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
    out = missing_dependency_messages(tmp_path, ["pnnx", "ncnn"],
                                      ["exporter_class('ncnn')().export(None, 'fp32', None)",
                                       "runner_class('ncnn')('x.param')"])
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
