"""ExecuTorch export (.pte, XNNPACK) and its runner, against PyTorch on held-out built-in photos.

The tiniest zoo model (mobilenetv1_025) at 32 px keeps the two lowerings (the XNNPACK passes are
pure Python and take most of the time) within the test budget. Random weights: fp32 must be the
same graph, int8 must keep the logit direction (the pipeline's random-weights rule).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("executorch")

import torch  # noqa: E402

import edgecls  # noqa: E402
from export_case import export_case  # noqa: E402
from edgecls.errors import InvalidArgumentError  # noqa: E402
from edgecls.export.base import ExportRequest  # noqa: E402
from edgecls.parity import FP32_MAX_REL_DIFF, INT8_RANDOM_MIN_COSINE, compare  # noqa: E402
from edgecls.export.registry import exporter_class  # noqa: E402
from edgecls.runtime.run import run_artifact  # noqa: E402

MODEL = "mobilenetv1_025"
RESOLUTION = 32


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return export_case(MODEL, RESOLUTION, 8, tmp_path_factory.mktemp("et"))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_pte_matches_pytorch(case, precision):
    request, sets, reference, workdir = case
    exporter = exporter_class("executorch")()
    dest = workdir / f"m_{precision}.pte"
    exporter.export(request, precision, dest)
    outputs, described = run_artifact(dest, sets.parity)
    figures = compare(reference, outputs)
    assert described["runtime"] == "executorch"
    assert described["input"]["shape"] == [1, 3, RESOLUTION, RESOLUTION]
    if precision == "fp32":
        assert figures.max_rel_diff <= FP32_MAX_REL_DIFF
    else:
        assert figures.min_cosine >= INT8_RANDOM_MIN_COSINE
        fp32 = workdir / "m_fp32.pte"
        if not fp32.exists():  # the fp32 case may have run in another worker or not at all
            exporter.export(request, "fp32", fp32)
        assert dest.stat().st_size < 0.5 * fp32.stat().st_size  # int8 weights
    sidecar = json.loads((workdir / f"m_{precision}.pte.json").read_text())
    assert [p.name for p in exporter.side_files(dest)] == [f"m_{precision}.pte.json"]
    assert sidecar["name"] == MODEL and sidecar["precision"] == precision
    assert sidecar["mean"] == list(request.info.mean) and len(sidecar["labels"]) == 1000
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
    code = (
        "import sys; sys.modules['executorch'] = None\n"
        "from edgecls.errors import MissingDependencyError\n"
        "from edgecls.export.registry import exporter_class\n"
        "from edgecls.runtime.registry import runner_class\n"
        "for call in (lambda: exporter_class('executorch')().export(None, 'fp32', None),\n"
        "             lambda: runner_class('executorch')('x.pte')):\n"
        "    try:\n"
        "        call()\n"
        "    except MissingDependencyError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={"PYTHONPATH": ":".join(sys.path)}).stdout.splitlines()
    assert len(out) == 2 and all("pip install 'edgecls[executorch]'" in line for line in out)


def test_int8_pretrained_lite0_quantizes_after_relu6_and_keeps_logits_float():
    """Real ImageNet weights on the pipeline's held-out views (random weights hide range problems):
    the PT2E int8 model the exporter lowers stays close to PyTorch. As XNNPACKQuantizer ships,
    every conv output is quantized over its range before ReLU6 clamps it, and the logits go through
    a clipping int8 observer: mean cosine 0.948, top-1 agreement 89.1 % here (128 px, 16 calibration
    views); with the exporter's annotation 0.996 and 93.8 % (the .pte: 0.949 / 85.9 % -> 0.996 / 93.8 %). Checked on the quantized model in
    PyTorch: lowering Lite0 costs ~2 min on this machine, and the lowered .pte gives the same figures
    (measured in edgecls.export.executorch; test_pte_matches_pytorch lowers a ReLU6 net's int8)."""
    from edgecls.export.calibration import builtin_sets
    from edgecls.export.executorch import _classifier_linears, _quantized

    info = edgecls.get_model_info("tf_efficientnet_lite0")
    if info.pretrained is None:
        pytest.skip("tf_efficientnet_lite0 has no built-in weights here")
    model = edgecls.create_model(info.name, pretrained=True, resolution=128)
    sets = builtin_sets(info, 128, 16)
    request = ExportRequest(model=model, info=info, resolution=128, batch=1, dynamic_batch=False, nhwc=False,
                            opset=18, calibration=sets.calibration, workdir=Path("."))
    sample = (torch.from_numpy(sets.calibration[:1]),)
    assert _classifier_linears(torch.export.export(model, sample).module()) == ["classifier"]
    quantized = _quantized(model, sample, request)
    targets = [str(n.target) for n in quantized.graph.nodes]
    # After each ReLU6 a quantize, never between a conv and its ReLU6; the classifier's input is
    # quantized at run time (dynamic) and its float output is the graph's output.
    clamps = [node for node in quantized.graph.nodes if node.target == torch.ops.aten.hardtanh.default]
    assert len(clamps) == 33
    for clamp in clamps:
        assert clamp.args[0].target == torch.ops.aten.conv2d.default
        assert [str(user.target) for user in clamp.users] == ["quantized_decomposed.quantize_per_tensor.default"]
    assert any("choose_qparams" in t for t in targets)
    assert quantized.graph.output_node().all_input_nodes[0].target == torch.ops.aten.linear.default
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
        outputs = np.concatenate([quantized(torch.from_numpy(view[None])).numpy() for view in sets.parity])
    figures = compare(reference, outputs)
    print(f"\nLite0@128 int8 (PT2E): mean cosine {figures.mean_cosine:.4f}, top-1 agreement {figures.top1_agreement:.3f}")
    assert figures.mean_cosine >= 0.99 and figures.top1_agreement >= 0.9, figures
