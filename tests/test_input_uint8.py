"""``--input-type uint8``: artifacts that take RGB bytes, the normalisation folded into the graph.

Reference: PyTorch fed a photo through the float preprocessing (resize, crop, /255, mean/std).
Candidate: the artifact fed that same crop as raw bytes straight from PIL, opened with its own
runtime (onnxruntime, OpenVINO, ncnn), not through edgecls' runners. Random weights at 32 px keep
it fast; fp32 must then be the same graph to 1e-4 of the logit scale.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import torch  # noqa: E402

import edgecls  # noqa: E402
from edgecls.errors import InvalidArgumentError  # noqa: E402
from edgecls.export.pipeline import ExportConfig, run_export  # noqa: E402
from edgecls.preprocess import builtin_photo_path, load_image, preprocess_for  # noqa: E402

MODEL = "mobilenetv2_035"
RESOLUTION = 32
PHOTOS = ("astronaut", "rocket", "coffee")


def _crop_bytes(info, name: str) -> np.ndarray:
    """The model's resize + centre crop of a built-in photo, as PIL gives it: (R, R, 3) uint8."""
    from PIL import Image

    image = load_image(builtin_photo_path(name))
    side = int(np.floor(RESOLUTION / info.crop_pct))
    w, h = image.size
    size = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
    image = image.resize(size, resample=Image.Resampling.BICUBIC)
    left, top = int(round((size[0] - RESOLUTION) / 2.0)), int(round((size[1] - RESOLUTION) / 2.0))
    return np.asarray(image.crop((left, top, left + RESOLUTION, top + RESOLUTION)), dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("u8")
    formats = ["onnx", "openvino"]
    try:
        import ncnn  # noqa: F401
        import pnnx  # noqa: F401

        formats.append("ncnn")
    except ImportError:
        pass
    run = run_export(ExportConfig(model=MODEL, formats=formats, input_type="uint8", resolution=RESOLUTION,
                                  calib_size=4, out=out))
    nhwc = run_export(ExportConfig(model=MODEL, formats=["onnx"], input_type="uint8", nhwc=True,
                                   resolution=RESOLUTION, calib_size=4, out=out))
    torch.manual_seed(0)  # the pipeline's random weights are this seeded draw
    model = edgecls.create_model(MODEL).eval()
    info = model.edgecls_info
    crops = np.stack([_crop_bytes(info, name) for name in PHOTOS])
    floats = np.stack([preprocess_for(info, load_image(builtin_photo_path(n)), RESOLUTION) for n in PHOTOS])
    with torch.no_grad():
        reference = model(torch.from_numpy(floats)).numpy()
    return out, {a["format"]: a for a in run.artifacts}, nhwc.artifacts[0], crops, reference


def _close(reference: np.ndarray, outputs: np.ndarray) -> None:
    scale = np.abs(reference).max()
    assert np.abs(outputs.reshape(reference.shape) - reference).max() <= 1e-4 * scale


def test_all_formats_pass_parity_on_bytes(exported):
    _, artifacts, nhwc, _, _ = exported
    for entry in [*artifacts.values(), nhwc]:
        assert entry["status"] == "passed", (entry["format"], entry["error"])
        assert "_u8_" in entry["file"] and entry["preprocessing"]["input_type"] == "uint8"


def test_onnx_takes_raw_bytes(exported):
    import onnxruntime as ort

    out, artifacts, nhwc, crops, reference = exported
    for entry, layout in ((artifacts["onnx"], "NCHW"), (nhwc, "NHWC")):
        session = ort.InferenceSession(str(out / entry["file"]), providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        assert meta["input_type"] == "uint8" and meta["layout"] == layout
        assert len(json.loads(meta["labels"])) == 1000
        assert session.get_inputs()[0].type == "tensor(uint8)"  # a real byte tensor, the Cast inside
        name = session.get_inputs()[0].name
        for crop, ref in zip(crops, reference):
            x = crop[None] if layout == "NHWC" else crop.transpose(2, 0, 1)[None]
            _close(ref[None], session.run(None, {name: np.ascontiguousarray(x)})[0])


def test_openvino_takes_raw_bytes(exported):
    ov = pytest.importorskip("openvino")
    out, artifacts, _, crops, reference = exported
    core = ov.Core()
    model = core.read_model(str(out / artifacts["openvino"]["file"]))
    assert model.get_rt_info(["edgecls", "input_type"]).astype(str) == "uint8"  # the compiled model drops rt_info
    assert model.input(0).get_element_type() == ov.Type.u8
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for crop, ref in zip(crops, reference):
        _close(ref[None], compiled(np.ascontiguousarray(crop.transpose(2, 0, 1)[None]))[0])


def test_ncnn_takes_from_pixels(exported):
    ncnn = pytest.importorskip("ncnn")
    out, artifacts, _, crops, reference = exported
    if "ncnn" not in artifacts:
        pytest.skip("pnnx / ncnn not installed")
    param = out / artifacts["ncnn"]["file"]
    assert json.loads((out / (artifacts["ncnn"]["file"] + ".json")).read_text())["input_type"] == "uint8"
    net = ncnn.Net()
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = net.opt.use_bf16_storage = False
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    for crop, ref in zip(crops, reference):
        extractor = net.create_extractor()
        # what an Android app does with a camera frame: RGB bytes straight into a Mat
        extractor.input("in0", ncnn.Mat.from_pixels(np.ascontiguousarray(crop), ncnn.Mat.PixelType.PIXEL_RGB,
                                                    RESOLUTION, RESOLUTION))
        _close(ref[None], np.array(extractor.extract("out0")[1]))


def test_unknown_input_type_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match="--input-type"):
        run_export(ExportConfig(model=MODEL, formats=["onnx"], input_type="int16", out=tmp_path))


@pytest.fixture(scope="module")
def tflite_exported(tmp_path_factory):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    out = tmp_path_factory.mktemp("u8_tflite")
    run = run_export(ExportConfig(model=MODEL, formats=["tflite"], precisions=["fp32", "int8"], input_type="uint8",
                                  resolution=RESOLUTION, calib_size=4, out=out))
    return out, {a["precision"]: a for a in run.artifacts}


def test_tflite_takes_a_uint8_tensor(tflite_exported, exported):
    """The flatbuffer's input is a real uint8 tensor (no quantization parameters: bytes, not int8
    codes), fed PIL's crop bytes straight through ai-edge-litert; fp32 equals PyTorch on the float
    preprocessing, int8 keeps its cosine."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecls.runtime.litert import read_tflite_metadata

    out, artifacts = tflite_exported
    _, _, _, crops, reference = exported
    for precision, entry in artifacts.items():
        assert entry["status"] == "passed", (precision, entry["error"])
        assert entry["input"]["dtype"] == "uint8" and "_u8_" in entry["file"]
        path = out / entry["file"]
        assert read_tflite_metadata(path)["input_type"] == "uint8"
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        (given,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
        assert given["dtype"] == np.uint8 and tuple(given["quantization"]) == (0.0, 0)
        outputs = []
        for crop in crops:
            interpreter.set_tensor(given["index"], np.ascontiguousarray(crop.transpose(2, 0, 1)[None]))
            interpreter.invoke()
            raw = interpreter.get_tensor(output["index"]).astype(np.float32)
            scale, zero = output["quantization"]
            outputs.append((raw - zero) * scale if output["dtype"] != np.float32 else raw)
        outputs = np.concatenate(outputs)
        if precision == "fp32":
            _close(reference, outputs)
        else:
            cosine = (outputs * reference).sum(1) / np.linalg.norm(outputs, axis=1) / np.linalg.norm(reference, axis=1)
            assert cosine.min() >= 0.9, cosine


def test_info_shows_the_tflite_uint8_input(tflite_exported):
    from cli_inprocess import run_cli

    out, artifacts = tflite_exported
    result = run_cli("info", str(out / artifacts["fp32"]["file"]), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["input"]["dtype"] == "uint8" and data["input_type"] == "uint8"
    text = run_cli("info", str(out / artifacts["fp32"]["file"])).stdout
    assert "uint8 tensor, normalisation in the graph" in text
