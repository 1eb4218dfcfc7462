"""Bias correction of int8 weights (edgecls.export.bias_correction), judged by what it promises:
the quantized layer's mean output moves back to the float layer's, measured by running both."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


class _Layers(torch.nn.Module):
    """A regular conv, a depthwise conv and a classifier, each with a bias, as the zoo's CNNs have."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 16, 3)
        self.depthwise = torch.nn.Conv2d(16, 16, 3, groups=16)
        self.fc = torch.nn.Linear(16, 10)
        for layer in (self.conv, self.depthwise, self.fc):
            # few, large weights per channel: rounding them to int8 leaves a visible mean shift
            layer.weight.data = torch.randn(layer.weight.shape, generator=generator) * 0.7
            layer.bias.data = torch.randn(layer.bias.shape, generator=generator) * 0.1

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = self.depthwise(x)
        return self.fc(x.mean(dim=(2, 3)))


def _export(tmp_path):
    model = _Layers().eval()
    path = tmp_path / "layers.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 12, 12),), str(path), input_names=["input"], output_names=["logits"],
                      dynamo=False, opset_version=17)
    return model, path


def _quantize(fp32, dest, data, reduce_range):
    """onnxruntime's static QDQ int8 of ``fp32`` calibrated on ``data`` (per-channel s8 weights, u8 activations)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": x[None]} for x in data])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(fp32), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return dest


def _layer_outputs(path, names, inputs):
    model = onnx.load(str(path))
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    runs = [session.run(names, {"input": x[None]}) for x in inputs]
    return [np.concatenate([run[i] for run in runs]) for i in range(len(names))]


def test_onnx_bias_correction_cancels_the_mean_shift_of_weight_rounding(tmp_path):
    from edgecls.export.bias_correction import correct_biases

    _, fp32 = _export(tmp_path)
    rng = np.random.default_rng(0)
    # inputs with a non-zero mean, as images after normalisation and ReLU features have
    data = rng.uniform(0.0, 2.0, (48, 3, 12, 12)).astype(np.float32)
    qdq = _quantize(fp32, tmp_path / "layers.int8.onnx", data, reduce_range=True)
    corrected = tmp_path / "layers.int8.bc.onnx"
    report = correct_biases(qdq, fp32, ({"input": x[None]} for x in data), corrected)
    assert report["corrected"] == 3 and report["skipped"] == 0

    graph = onnx.load(str(fp32)).graph
    layer_outputs = [n.output[0] for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(layer_outputs) == 3
    # the same layers, in the same order, in the int8 graph
    names_q = [n.output[0] for n in onnx.load(str(qdq)).graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(names_q) == 3
    held_out = rng.uniform(0.0, 2.0, (48, 3, 12, 12)).astype(np.float32)  # not the images the means came from
    reference = _layer_outputs(fp32, layer_outputs, held_out)
    before = _layer_outputs(qdq, names_q, held_out)
    after = _layer_outputs(corrected, names_q, held_out)

    def mean_shift(outputs, ref):
        axes = (0, 2, 3) if ref.ndim == 4 else (0,)
        return np.abs((outputs - ref).mean(axis=axes)).mean()

    # the first layer sees the float input, so only its own weights shift it: the correction removes
    # most of the shift; the later ones also inherit what is left upstream, and still improve
    first_before, first_after = mean_shift(before[0], reference[0]), mean_shift(after[0], reference[0])
    assert first_after < 0.35 * first_before, (first_before, first_after)
    for b, a, ref in zip(before[1:], after[1:], reference[1:]):
        assert mean_shift(a, ref) < mean_shift(b, ref)
    # the logits get closer to the float model's
    assert np.abs(after[2] - reference[2]).mean() < np.abs(before[2] - reference[2]).mean()


def test_onnx_bias_correction_leaves_a_layer_alone_when_the_float_weight_does_not_match(tmp_path):
    from edgecls.export.bias_correction import correct_biases

    _, fp32 = _export(tmp_path)
    data = np.random.default_rng(1).uniform(0.0, 2.0, (8, 3, 12, 12)).astype(np.float32)
    qdq = _quantize(fp32, tmp_path / "layers.int8.onnx", data, reduce_range=False)
    # another network's weights under the same names (e.g. a BatchNorm folded after the names were taken)
    other = onnx.load(str(fp32))
    for tensor in other.graph.initializer:
        if tensor.name.endswith("weight"):
            value = onnx.numpy_helper.to_array(tensor) * 1.5
            tensor.CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), tensor.name))
    mismatched = tmp_path / "other.onnx"
    onnx.save(other, str(mismatched))
    report = correct_biases(qdq, mismatched, ({"input": x[None]} for x in data), tmp_path / "out.onnx")
    assert report["corrected"] == 0 and report["skipped"] == 3


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_pretrained_lite0_int8_gets_closer_to_fp32(tmp_path, fmt):
    """Real weights, the built-in calibration and held-out parity views, each int8 route with and
    without the correction: the logits must move towards PyTorch's (mean cosine)."""
    import edgecls
    from edgecls.export.base import ExportRequest
    from edgecls.export.calibration import builtin_sets
    from edgecls.parity import compare
    from edgecls.runtime.run import run_artifact

    name, side = "tf_efficientnet_lite0", 96
    model, info = edgecls.create_model(name, pretrained=True).eval(), edgecls.get_model_info(name)
    sets = builtin_sets(info, side, 24)
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    request = ExportRequest(model=model, info=info, resolution=side, batch=1, dynamic_batch=False, nhwc=False,
                            opset=18, calibration=sets.calibration, workdir=tmp_path / "work")
    request.workdir.mkdir()
    cosines = {}
    for correct in (False, True):
        dest = tmp_path / f"lite0_{correct}.{'onnx' if fmt == 'onnx' else 'tflite'}"
        if fmt == "onnx":
            from edgecls.export import onnx as onnx_export

            settings = onnx_export.OnnxInt8Settings(bias_correction=correct)
            used = onnx_export.quantize_int8(onnx_export.fp32_onnx(request), dest, request, settings)
            assert ("bias_correction" in used and isinstance(used["bias_correction"], dict)) == correct
        else:
            from edgecls.export import tflite as tflite_export

            content = tflite_export._float32_flatbuffer(request)
            settings = tflite_export.TFLiteInt8Settings(bias_correction=correct)
            dest.write_bytes(tflite_export._full_integer(content, request, settings))
        logits, _ = run_artifact(dest, sets.parity)
        cosines[correct] = compare(reference, np.asarray(logits).reshape(reference.shape)).mean_cosine
    assert cosines[True] > cosines[False], cosines
