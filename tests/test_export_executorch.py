"""ExecuTorch export (.pte, XNNPACK) and its runner, against PyTorch on held-out built-in photos.

The tiniest zoo model (mobilenetv1_025) at 32 px keeps the two lowerings (the XNNPACK passes are
pure Python and take most of the time) within the test budget. Random weights: fp32 must be the
same graph, int8 must keep the logit direction (the pipeline's random-weights rule).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("executorch")

import edgecls  # noqa: E402
from export_case import case_fixture, check_converted, missing_dependency_messages  # noqa: E402
from edgecls.errors import InvalidArgumentError  # noqa: E402
from edgecls.export.base import ExportRequest  # noqa: E402
from edgecls.parity import FP32_MAX_REL_DIFF, INT8_RANDOM_MIN_COSINE, compare  # noqa: E402
from edgecls.export.registry import exporter_class  # noqa: E402
from edgecls.runtime.run import run_artifact  # noqa: E402

MODEL = "mobilenetv1_025"
RESOLUTION = 32

case = case_fixture(MODEL, RESOLUTION, 8)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_pte_matches_pytorch(case, precision):
    # int8 weights: under half the fp32 program
    exporter, dest = check_converted(case, "executorch", precision, "m_{}.pte", INT8_RANDOM_MIN_COSINE, 0.5)
    sidecar = json.loads(dest.with_name(dest.name + ".json").read_text())
    assert [p.name for p in exporter.side_files(dest)] == [f"m_{precision}.pte.json"]
    assert sidecar["name"] == MODEL and sidecar["precision"] == precision
    assert sidecar["mean"] == list(case[0].info.mean) and len(sidecar["labels"]) == 1000
    assert sidecar["edgecls_version"] == edgecls.__version__


def test_uint8_input_is_a_byte_tensor(case):
    """--input-type uint8: the program's input is a uint8 tensor (the cast runs inside); fed the
    parity crops' bytes it gives PyTorch's logits on the float preprocessing."""
    from edgecls.export.app_input import wrap
    from edgecls.export.calibration import pixel_bytes

    request, sets, reference, workdir = case
    info = request.info
    as_bytes = ExportRequest(**{**request.__dict__, "model": wrap(request.model, info.mean, info.std),
                                "input_type": "uint8",
                                "calibration": pixel_bytes(request.calibration, info.mean, info.std)})
    dest = workdir / "m_u8_fp32.pte"
    exporter_class("executorch")().export(as_bytes, "fp32", dest)
    pixels = pixel_bytes(sets.parity, info.mean, info.std)
    assert np.array_equal(pixels, np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 255
    outputs, described = run_artifact(dest, pixels)
    assert described["input"]["dtype"] == "uint8"
    assert json.loads((workdir / "m_u8_fp32.pte.json").read_text())["input_dtype"] == "uint8"
    assert compare(reference, outputs).max_rel_diff <= FP32_MAX_REL_DIFF


def test_fp16_and_dynamic_batch_refused(case):
    request = case[0]
    exporter = exporter_class("executorch")()
    with pytest.raises(InvalidArgumentError, match="no precision 'fp16'"):
        exporter.export(request, "fp16", Path("unused.pte"))
    dynamic = ExportRequest(**{**request.__dict__, "dynamic_batch": True})
    with pytest.raises(InvalidArgumentError, match="static batch"):
        exporter.export(dynamic, "fp32", Path("unused.pte"))


def test_missing_executorch_names_the_extra(tmp_path):
    """Without the package the exporter and the runner fail with one line naming the extra."""
    out = missing_dependency_messages(tmp_path, ["executorch"],
                                      ["exporter_class('executorch')().export(None, 'fp32', None)",
                                       "runner_class('executorch')('x.pte')"])
    assert len(out) == 2 and all("pip install 'edgecls[executorch]'" in line for line in out)
