"""OpenVINO IR export and the OpenVINO runner: parity with torch per precision, layout, batch, metadata."""

from __future__ import annotations

import json

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

import torch  # noqa: E402

import edgecls  # noqa: E402
from edgecls.runtime.openvino import OpenVinoRunner  # noqa: E402
from edgecls.runtime.registry import open_runner  # noqa: E402
from edgecls.errors import EdgeclsError, InvalidArgumentError  # noqa: E402
from edgecls.export.base import ExportRequest  # noqa: E402
from edgecls.export.openvino import EXPORTER, OpenVinoExporter  # noqa: E402
from edgecls.preprocess import BUILTIN_PHOTOS, builtin_photo_path, load_image, preprocess  # noqa: E402

# Real ImageNet weights (shipped by an installed package) on real photos: random weights give
# near-constant logits, which would let a wrong layout or a broken calibration pass unnoticed.
MODEL = "tf_efficientnet_lite0"
RESOLUTION = 96
CALIBRATION_CROPS = (1.0, 0.875, 0.6, 0.45)  # 9 photos x 4 crops = 36 calibration images
HOLDOUT_CROP = 0.75  # a crop calibration never saw


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def info():
    return edgecls.get_model_info(MODEL)


@pytest.fixture(scope="module")
def model(info):
    if info.pretrained is None:
        pytest.skip(f"{MODEL} has no built-in weights here")
    return edgecls.create_model(MODEL, pretrained=True)


@pytest.fixture(scope="module")
def photos():
    return [load_image(builtin_photo_path(name)) for name in BUILTIN_PHOTOS]


@pytest.fixture(scope="module")
def calibration(photos, info) -> np.ndarray:
    return np.stack([preprocess(p, RESOLUTION, info.mean, info.std, crop) for p in photos for crop in CALIBRATION_CROPS])


@pytest.fixture(scope="module")
def holdout(photos, info) -> np.ndarray:
    return np.stack([preprocess(p, RESOLUTION, info.mean, info.std, HOLDOUT_CROP) for p in photos])


@pytest.fixture(scope="module")
def reference(model, holdout) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.from_numpy(holdout)).numpy()
    assert len(set(logits.argmax(1).tolist())) >= 5, "the photos should get different classes"
    return logits


def make_request(model, info, calibration, workdir: Path, *, batch=1, dynamic=True, nhwc=False) -> ExportRequest:
    return ExportRequest(model=model, info=info, resolution=RESOLUTION, batch=batch, dynamic_batch=dynamic,
                         nhwc=nhwc, opset=17, calibration=calibration, workdir=workdir)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model, info, calibration):
    """Export on demand, once per precision, all sharing one workdir (so one conversion)."""
    folder = tmp_path_factory.mktemp("openvino")
    request = make_request(model, info, calibration, folder / "work")
    paths: dict[str, Path] = {}

    def get(precision: str) -> Path:
        if precision not in paths:
            dest = folder / f"{MODEL}_{precision}.xml"
            EXPORTER().export(request, precision, dest)
            paths[precision] = dest
        return paths[precision]

    return get


def test_fp32_matches_torch_at_any_batch(exported, holdout, reference):
    runner = OpenVinoRunner(exported("fp32"), threads=1)
    assert runner.input_spec.shape == (None, 3, RESOLUTION, RESOLUTION)
    assert runner.input_spec.layout == "NCHW" and runner.input_spec.dtype == "float32"
    scale = np.abs(reference).max()
    whole = runner.run(holdout)
    single = runner.run(holdout[:1])
    assert whole.shape == (len(holdout), 1000) and single.shape == (1, 1000)
    assert np.abs(whole - reference).max() <= 1e-4 * scale
    assert np.abs(single - reference[:1]).max() <= 1e-4 * scale


def test_fp16_weights_keep_the_outputs(exported, holdout, reference):
    fp32, fp16 = exported("fp32"), exported("fp16")
    # Half the weight bytes (the .bin is almost all weights).
    assert fp16.with_suffix(".bin").stat().st_size < 0.55 * fp32.with_suffix(".bin").stat().st_size
    out = OpenVinoRunner(fp16, threads=1).run(holdout)
    cosine = row_cosine(out, reference)
    assert cosine.min() >= 0.999, f"fp16 cosine per image: {np.round(cosine, 5)}"
    assert (out.argmax(1) == reference.argmax(1)).all()


@pytest.fixture(scope="module")
def nncf_int8(tmp_path_factory, model, info, calibration) -> Path:
    folder = tmp_path_factory.mktemp("openvino_nncf")
    request = make_request(model, info, calibration, folder / "work")
    request.options = {"openvino": {"int8": {"quantizer": "nncf"}}}
    dest = folder / f"{MODEL}_int8_nncf.xml"
    EXPORTER().export(request, "int8", dest)
    return dest


@pytest.mark.parametrize("quantizer", ["onnxruntime", "nncf"])
def test_int8_calibrated_on_photos_stays_close(quantizer, exported, nncf_int8, holdout, reference):
    fp32 = exported("fp32")
    int8 = exported("int8") if quantizer == "onnxruntime" else nncf_int8  # a CNN's default is onnxruntime's QDQ
    assert int8.with_suffix(".bin").stat().st_size < 0.35 * fp32.with_suffix(".bin").stat().st_size
    runner = OpenVinoRunner(int8, threads=1)
    assert runner.metadata["int8_quantizer"] == quantizer
    if quantizer == "nncf":
        assert runner.metadata["int8_overflow_fix"] == "enable" and runner.metadata["int8_model_type"] == "cnn"
    else:
        assert json.loads(runner.metadata["int8_onnx_settings"])["per_channel"] is True
    # the graph really runs int8 kernels (FakeQuantize folded into the convolutions), not float
    assert runner.compute_precisions().get("int8", 0) + runner.compute_precisions().get("u8", 0) + \
        runner.compute_precisions().get("i8", 0) > 10, runner.compute_precisions()
    out = runner.run(holdout)
    cosine = row_cosine(out, reference)
    agree = float((out.argmax(1) == reference.argmax(1)).mean())
    print(f"\n{MODEL}@{RESOLUTION} int8 ({quantizer}): mean cosine {cosine.mean():.5f}, min {cosine.min():.5f}, "
          f"top-1 agreement {agree:.2f}")
    # Measured on an AVX2 CPU (NNCF): mean 0.978, min 0.913 (the least confident photos), top-1 8/9.
    # A broken calibration (wrong normalization or layout) lands far below these bounds.
    assert cosine.mean() >= 0.96 and cosine.min() >= 0.85, f"int8 cosine per image: {np.round(cosine, 4)}"
    assert agree >= 7 / 9


def test_int8_channels_last_static_batch_through_onnxruntime(tmp_path, model, info, calibration, holdout, reference):
    # The QDQ ONNX is NCHW whatever the artifact's layout; the IR gains the NHWC input once, in finish().
    request = make_request(model, info, calibration, tmp_path / "work", batch=2, dynamic=False, nhwc=True)
    dest = tmp_path / "nhwc_int8.xml"
    OpenVinoExporter().export(request, "int8", dest)
    runner = OpenVinoRunner(dest, threads=1)
    assert runner.input_spec.shape == (2, RESOLUTION, RESOLUTION, 3) and runner.input_spec.layout == "NHWC"
    assert runner.metadata["int8_quantizer"] == "onnxruntime", runner.metadata.get("int8_quantizer_fallback")
    out = np.concatenate([runner.run(np.ascontiguousarray(holdout[i:i + 2].transpose(0, 2, 3, 1))) for i in (0, 2, 4, 6)])
    assert row_cosine(out, reference[:8]).mean() >= 0.96


def test_auto_leaves_squeeze_excite_graphs_to_nncf(tmp_path):
    # MobileNetV3's hard-swish and squeeze-excite (HardSigmoid, Mul) run faster from NNCF's placement
    name, side = "mobilenetv3_small_075", 64
    model, info = edgecls.create_model(name), edgecls.get_model_info(name)
    calibration = np.random.default_rng(0).standard_normal((4, 3, side, side)).astype(np.float32)
    request = ExportRequest(model=model, info=info, resolution=side, batch=1, dynamic_batch=False, nhwc=False, opset=18,
                            calibration=calibration, workdir=tmp_path / "work")
    dest = tmp_path / "mnv3.xml"
    OpenVinoExporter().export(request, "int8", dest)
    metadata = OpenVinoRunner(dest, threads=1).metadata
    assert metadata["int8_quantizer"] == "nncf"
    why = metadata["int8_quantizer_fallback"]
    assert why.startswith("auto chose NNCF: the graph has ") and {"HardSigmoid", "Mul"} <= set(
        why.removeprefix("auto chose NNCF: the graph has ").split(" (")[0].split(", ")), why
    from edgecls.export.openvino import QDQ_SUITED_OPS

    assert {"Conv", "Clip", "Relu"} <= QDQ_SUITED_OPS and not {"HardSigmoid", "Sigmoid", "Mul"} & QDQ_SUITED_OPS


def test_int8_falls_back_to_nncf_when_the_onnx_route_fails(tmp_path, model, info, calibration, monkeypatch):
    import edgecls.export.onnx as onnx_export

    def broken_capture(request):
        raise RuntimeError("torch.onnx could not capture this model")

    monkeypatch.setattr(onnx_export, "fp32_onnx", broken_capture)
    request = make_request(model, info, calibration, tmp_path / "work")
    dest = tmp_path / "fallback.xml"
    OpenVinoExporter().export(request, "int8", dest)
    metadata = OpenVinoRunner(dest, threads=1).metadata
    assert metadata["int8_quantizer"] == "nncf"
    assert metadata["int8_quantizer_fallback"] == "onnxruntime QDQ failed: torch.onnx could not capture this model"
    # asked for by name, the route's failure is the export's failure
    request.options = {"openvino": {"int8": {"quantizer": "onnxruntime"}}}
    with pytest.raises(RuntimeError, match="could not capture"):
        OpenVinoExporter().export(request, "int8", tmp_path / "named.xml")


def test_channels_last_static_batch(tmp_path, model, info, calibration, holdout, reference):
    request = make_request(model, info, calibration, tmp_path / "work", batch=2, dynamic=False, nhwc=True)
    dest = tmp_path / "nhwc.xml"
    OpenVinoExporter().export(request, "fp32", dest)
    runner = OpenVinoRunner(dest, threads=1)
    assert runner.input_spec.shape == (2, RESOLUTION, RESOLUTION, 3)
    assert runner.input_spec.layout == "NHWC"
    out = runner.run(holdout[:2].transpose(0, 2, 3, 1))
    assert np.abs(out - reference[:2]).max() <= 1e-4 * np.abs(reference).max()
    assert runner.metadata["layout"] == "NHWC"


def test_metadata_and_side_file(exported, info):
    path = exported("fp32")
    assert OpenVinoExporter().side_files(path) == [path.with_suffix(".bin")]
    assert path.with_suffix(".bin").is_file()
    runner = OpenVinoRunner(path)
    meta = runner.metadata
    assert meta["model"] == MODEL and meta["resolution"] == str(RESOLUTION)
    assert meta["precision"] == "fp32" and meta["layout"] == "NCHW" and meta["num_classes"] == "1000"
    assert [float(v) for v in meta["mean"].split(",")] == pytest.approx(info.mean)
    assert [float(v) for v in meta["std"].split(",")] == pytest.approx(info.std)
    assert meta["converter"] in ("torch.export", "torch.jit.trace")
    assert runner.input_spec.name == "input"


def test_runner_compiles_for_fp32_latency(exported):
    import openvino.properties as props
    import openvino.properties.hint as hints

    runner = open_runner(exported("fp32"), threads=1)
    assert isinstance(runner, OpenVinoRunner)
    compiled = runner.compiled
    assert compiled.get_property(props.inference_num_threads) == 1
    assert compiled.get_property(props.num_streams) == 1
    assert str(compiled.get_property(hints.inference_precision)) in ("<Type: 'float32'>", "f32")
    assert runner.version()
    # prepare once, infer many: the same prepared request gives the same answer each time
    x = np.zeros((1, 3, RESOLUTION, RESOLUTION), np.float32)
    prepared = runner.prepare(x)
    first = runner.to_float(runner.infer(prepared))
    assert np.array_equal(first, runner.to_float(runner.infer(prepared)))


def test_user_errors_are_one_line(tmp_path, model, info, calibration):
    exporter = OpenVinoExporter()
    with pytest.raises(InvalidArgumentError, match="precision"):
        exporter.export(make_request(model, info, calibration, tmp_path), "int4", tmp_path / "x.xml")
    with pytest.raises(InvalidArgumentError, match="calibration"):
        exporter.export(make_request(model, info, None, tmp_path), "int8", tmp_path / "x.xml")
    with pytest.raises(InvalidArgumentError, match="calibration"):
        exporter.export(make_request(model, info, calibration[:, :, :32], tmp_path), "int8", tmp_path / "x.xml")
    for options, message in (({"openvino": {"int8": {"overflow_fix": "sometimes"}}}, "overflow_fix"),
                             ({"openvino": {"int8": {"bits": 4}}}, "unknown"),
                             ({"openvino": {"quantize": {}}}, "unknown"),
                             ({"openvino": {"int8": {"quantizer": "pot"}}}, "quantizer must be one of"),
                             ({"openvino": {"int8": {"quantizer": "onnxruntime", "float_layers": ["last"]}}},
                              "float_nodes")):
        request = make_request(model, info, calibration, tmp_path)
        request.options = options
        with pytest.raises(InvalidArgumentError, match=message):
            exporter.export(request, "int8", tmp_path / "x.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text("<net>not an IR")
    with pytest.raises(EdgeclsError, match="OpenVINO cannot read"):
        OpenVinoRunner(broken)
