"""ONNX format: fp32 / fp16 / int8 artifacts load in onnxruntime and match PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

import edgecls
from edgecls.errors import InvalidArgumentError
from edgecls.export.base import ExportRequest
from edgecls.export.calibration import load_image_sets
from edgecls.export.onnx import OnnxExporter, OnnxInt8Settings, fp32_onnx
from edgecls.export.onnx_fp16 import convert_to_fp16
from edgecls.parity import compare, rule_for
from edgecls.runtime.run import run_artifact


NAME, RESOLUTION = "squeezenet1_1", 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    model = edgecls.create_model(NAME)
    sets = load_image_sets(model.edgecls_info, "builtin", RESOLUTION, 16)
    workdir = tmp_path_factory.mktemp("onnx_work")
    request = ExportRequest(model, model.edgecls_info, RESOLUTION, 1, False, False, 18, sets.calibration, workdir)
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    return request, sets, reference, tmp_path_factory.mktemp("onnx_out")


def _export(setup, precision, settings=None):
    request, sets, reference, out = setup
    request.options = {"onnx": {"int8": settings}} if settings else {}
    dest = out / f"{NAME}_{precision}{'_' + '_'.join(map(str, settings.values())) if settings else ''}.onnx"
    OnnxExporter().export(request, precision, dest)
    logits, described = run_artifact(dest, sets.parity)
    return dest, compare(reference, logits), described


def test_fp32_matches_torch_and_carries_metadata(setup):
    dest, figures, described = _export(setup, "fp32")
    assert figures.max_rel_diff <= 1e-4 and figures.top1_agreement == 1.0
    assert rule_for("fp32", real_weights=False).check(figures) is None
    assert described["input"] == {"name": "input", "shape": [1, 3, RESOLUTION, RESOLUTION], "dtype": "float32",
                                  "layout": "NCHW"}
    model = onnx.load(str(dest))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert props["name"] == NAME and props["resolution"] == str(RESOLUTION) and props["layout"] == "NCHW"
    assert json.loads(props["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(props["std"]) == pytest.approx([0.229, 0.224, 0.225])
    labels = json.loads(props["labels"])
    assert len(labels) == 1000 and labels[281] == "tabby" and labels[282] == "tiger cat"
    assert props["edgecls_version"] == edgecls.__version__
    # onnxslim leaves no no-op nodes behind
    assert not [n for n in model.graph.node if n.op_type == "Identity"]


def test_fp16_keeps_float32_io_and_halves_the_file(setup):
    dest, figures, described = _export(setup, "fp16")
    fp32_size = fp32_onnx(setup[0]).stat().st_size
    assert dest.stat().st_size < 0.6 * fp32_size
    assert figures.min_cosine >= 0.999 and figures.top1_agreement == 1.0
    assert figures.max_rel_diff > 1e-6  # it really computes in half precision
    assert described["input"]["dtype"] == "float32"
    model = onnx.load(str(dest))
    floats = [i for i in model.graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(i.data_type == onnx.TensorProto.FLOAT16 for i in floats)
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("settings", [
    None,  # the profile's default: u8 activations, s8 weights, reduce_range
    {"activation_type": "int8", "weight_type": "int8", "reduce_range": False},
])
def test_int8_is_static_qdq_per_channel(setup, settings):
    dest, figures, _ = _export(setup, "int8", settings)
    assert figures.min_cosine >= 0.99 and figures.top1_agreement == 1.0
    assert figures.max_rel_diff > 1e-4  # quantized, so not bit-identical to fp32
    model = onnx.load(str(dest))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 10 and ops.count("DequantizeLinear") >= 20
    inits = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and len(inits[n.input[0]].dims) == 4]
    assert weight_dq, "conv weights are stored quantized"
    expected = onnx.TensorProto.INT8
    assert all(inits[n.input[0]].data_type == expected for n in weight_dq)
    # per-channel: one scale per output channel
    assert all(len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1 for n in weight_dq)
    props = {p.key: p.value for p in model.metadata_props}
    used = json.loads(props["quantization"])
    assert used["activation_type"] == (settings or {}).get("activation_type", "uint8")
    assert props["precision"] == "int8"


def test_nhwc_dynamic_batch(setup, tmp_path):
    request, sets, reference, _ = setup
    nhwc = ExportRequest(request.model, request.info, RESOLUTION, 1, True, True, 17, sets.calibration, tmp_path)
    dest = tmp_path / "nhwc.onnx"
    OnnxExporter().export(nhwc, "fp32", dest)
    import onnxruntime as ort

    session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert not isinstance(shape[0], int) and shape[1:] == [RESOLUTION, RESOLUTION, 3]
    batch = np.ascontiguousarray(sets.parity[:3].transpose(0, 2, 3, 1))
    logits = session.run(None, {"input": batch})[0]
    assert compare(reference[:3], logits).max_rel_diff <= 1e-4
    assert session.get_modelmeta().custom_metadata_map["layout"] == "NHWC"


def test_int8_settings_are_validated():
    with pytest.raises(InvalidArgumentError, match="unknown"):
        OnnxInt8Settings.from_options({"activation": "uint8"})
    with pytest.raises(InvalidArgumentError, match="weight_type"):
        OnnxInt8Settings.from_options({"weight_type": "int4"})


def test_old_opset_is_refused(setup, tmp_path):
    request, sets, _, _ = setup
    old = ExportRequest(request.model, request.info, RESOLUTION, 1, False, False, 13, sets.calibration, tmp_path)
    with pytest.raises(InvalidArgumentError, match="opset 13"):
        OnnxExporter().export(old, "fp32", tmp_path / "old.onnx")


def test_fp16_conversion_of_a_tiny_graph():
    """Hand-made graph: Resize scales stay float32, an out-of-range weight is clipped to float16's
    largest value, the arithmetic runs in float16 and the I/O stays float32; the graph passes
    onnx.checker (nodes topologically sorted)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    big = numpy_helper.from_array(np.array([1e6], dtype=np.float32), "big")
    nodes = [
        helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest"),
        helper.make_node("Constant", [], ["c"], value_float=0.5),
        helper.make_node("Mul", ["r", "c"], ["m"]),
        helper.make_node("Div", ["m", "big"], ["d"]),
        helper.make_node("Mul", ["d", "big"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [scales, big])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    half = convert_to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    inits = {numpy_helper.to_array(i).tobytes(): i for i in half.graph.initializer}
    assert inits[np.array([1, 1, 2, 2], dtype=np.float32).tobytes()].data_type == TensorProto.FLOAT
    assert np.float16(65504).tobytes() in inits  # 1e6 clipped, not inf
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    import onnxruntime as ort

    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    data = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=np.float32)
    out = session.run(None, {"x": data})[0]
    assert out.dtype == np.float32
    # x * 0.5 / 65504 * 65504 in float16: the input up to float16 rounding of the quotient
    np.testing.assert_allclose(out, np.repeat(np.repeat(data, 2, axis=2), 2, axis=3) * 0.5, rtol=2e-3)


def test_attention_models_quantize_only_the_integer_kernels(tmp_path):
    """MobileViT / Mobile-Former int8: QDQ around Conv / Gemm / MatMul only, so layer norms,
    softmax and elementwise arithmetic stay float (quantizing them cost mobileformer_96m its
    top-1 on random weights: min cosine 0.975 -> 0.9995 with this rule)."""
    torch.manual_seed(0)
    model = edgecls.create_model("mobilevitv2_050")
    sets = load_image_sets(model.edgecls_info, "builtin", RESOLUTION, 16)
    request = ExportRequest(model, model.edgecls_info, RESOLUTION, 1, False, False, 18, sets.calibration, tmp_path)
    dest = tmp_path / "mobilevitv2_050_int8.onnx"
    OnnxExporter().export(request, "int8", dest)
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    figures = compare(reference, run_artifact(dest, sets.parity)[0])
    assert figures.min_cosine >= 0.99 and figures.max_rel_diff > 1e-4
    graph = onnx.load(str(dest)).graph
    inits = {i.name for i in graph.initializer}
    # Stored-quantized parameters only feed the integer kernels (ORT's default also quantizes
    # the norms' scales and the elementwise constants).
    weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    fed = {n.op_type for n in graph.node if weights & set(n.input)}
    assert fed and fed <= {"Conv", "Gemm", "MatMul"}, fed
    # No softmax or normalisation output is requantized.
    producer = {out: n.op_type for n in graph.node for out in n.output}
    requantized = {producer.get(n.input[0]) for n in graph.node if n.op_type == "QuantizeLinear"}
    assert not requantized & {"Softmax", "LayerNormalization", "GroupNormalization"}, requantized
    used = json.loads({p.key: p.value for p in onnx.load(str(dest)).metadata_props}["quantization"])
    assert used["op_types"] == ["Conv", "Gemm", "MatMul"]


def test_int8_op_types_setting_is_validated():
    assert OnnxInt8Settings.from_options({"op_types": ["Conv"]}).op_types == ["Conv"]
    with pytest.raises(InvalidArgumentError, match="op_types"):
        OnnxInt8Settings.from_options({"op_types": "conv"})
