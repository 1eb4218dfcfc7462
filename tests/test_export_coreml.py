"""Core ML export (.mlpackage through coremltools) and how the pipeline records it off macOS.

Off macOS nothing can run an ML package, so these tests check what can be checked here: the
converted program's interface, its precision (float16 compute for fp16, int8 weight and activation
ops for int8, read from the saved spec), the embedded metadata, and that the pipeline publishes the
folder with a sha256 over its files and the status "converted, not verified: needs macOS", which
bench never counts as a passed artifact. On macOS the pipeline runs the same parity as for every
format instead.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys

import pytest

pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")

import edgecls  # noqa: E402
from export_case import case_fixture, missing_dependency_messages  # noqa: E402
from edgecls.export.base import ExportRequest  # noqa: E402
from edgecls.export.calibration import builtin_sets  # noqa: E402
from edgecls.export.registry import exporter_class  # noqa: E402

MODEL = "mobilenetv1_025"
RESOLUTION = 32


def _ops(path) -> dict[str, int]:
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    counts: dict[str, int] = {}
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                counts[op.type] = counts.get(op.type, 0) + 1
    return counts


case = case_fixture(MODEL, RESOLUTION, 4)


@pytest.fixture(scope="module")
def request_(case):
    return case[0]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_mlpackage_converted(request_, precision):
    import coremltools as ct

    from edgecls.runtime.registry import runner_class

    dest = request_.workdir / f"m_{precision}.mlpackage"
    exporter_class("coreml")().export(request_, precision, dest)
    assert dest.is_dir() and (dest / "Manifest.json").is_file()
    spec = ct.models.MLModel(str(dest), skip_model_load=True).get_spec()
    assert list(spec.description.input[0].type.multiArrayType.shape) == [1, 3, RESOLUTION, RESOLUTION]
    assert spec.description.output[0].name == "logits"
    meta = runner_class("coreml").read_metadata(dest)
    assert meta["name"] == MODEL and meta["precision"] == precision and meta["input_type"] == "float32"
    assert len(json.loads(meta["labels"])) == 1000 and meta["edgecls_version"] == edgecls.__version__
    ops = _ops(dest)
    if precision == "int8":  # int8 weights (dequantized at load) and int8 activations
        assert ops.get("constexpr_affine_dequantize", 0) > 0 and ops.get("quantize", 0) > 0
    else:
        assert "quantize" not in ops and "constexpr_affine_dequantize" not in ops
    if precision != "fp32":  # fp16 weights / int8 weights: the package shrinks against the fp32 one
        fp32 = request_.workdir / "m_fp32.mlpackage"
        size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())  # noqa: E731
        assert size(dest) < (0.65 if precision == "fp16" else 0.4) * size(fp32)


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS Core ML artifacts are verified like the others")
def test_pipeline_records_unverified(tmp_path):
    from edgecls.bench.harness import targets_from_manifest
    from edgecls.export.pipeline import ExportConfig, run_export
    from edgecls.manifest import UNVERIFIED as UNVERIFIED_STATUS

    out = tmp_path / "out"
    run = run_export(ExportConfig(model=MODEL, formats=["coreml", "onnx"], resolution=RESOLUTION, calib_size=4, out=out))
    by_format = {a["format"]: a for a in run.artifacts}
    entry = by_format["coreml"]
    assert entry["status"] == UNVERIFIED_STATUS and entry["parity"] is None and "macOS" in entry["unverified_reason"]
    assert run.ok  # unverified is not a failure of the run
    package = out / entry["file"]
    assert package.is_dir()
    files = sorted(p for p in package.rglob("*") if p.is_file())
    expected = hashlib.sha256()
    for member in files:
        expected.update(member.relative_to(package).as_posix().encode() + b"\0"
                        + hashlib.sha256(member.read_bytes()).hexdigest().encode())
    assert entry["sha256"] == expected.hexdigest()
    assert entry["size_bytes"] == sum(p.stat().st_size for p in files)
    # bench times verified artifacts only: the ONNX one, not the Core ML package
    assert [t.format for t in targets_from_manifest(out)] == ["onnx"]
    # a second export into the same folder replaces the package folder
    again = run_export(ExportConfig(model=MODEL, formats=["coreml"], resolution=RESOLUTION, calib_size=4, out=out))
    assert again.artifacts[0]["status"] == UNVERIFIED_STATUS and (out / entry["file"] / "Manifest.json").is_file()


def test_missing_coremltools_names_the_extra(tmp_path):
    out = missing_dependency_messages(tmp_path, ["coremltools"],
                                      ["exporter_class('coreml')().export(None, 'fp32', None)"])
    assert len(out) == 1 and "pip install 'edgecls[coreml]'" in out[0]


def _first_affine(path) -> tuple[str, list[float], list[float]]:
    """The input name the program's first compute op reads, and the per-channel scale and shift it
    applies (read from its batch_norm constants: (x - mean) / sqrt(var + eps) * gamma + beta)."""
    import coremltools as ct
    import numpy as np

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    ops = list(spec.mlProgram.functions["main"].block_specializations.values())[0].operations
    consts = {op.outputs[0].name: op for op in ops if op.type == "const"}
    first = next(op for op in ops if op.type != "const")
    assert first.type == "batch_norm", f"expected the folded normalisation first, got {first.type}"

    def value(key: str) -> np.ndarray:
        name = first.inputs[key].arguments[0].name
        return np.array(consts[name].attributes["val"].immediateValue.tensor.floats.values, dtype=np.float64)

    scale = value("gamma") / np.sqrt(value("variance") + value("epsilon"))
    return first.inputs["x"].arguments[0].name, scale.tolist(), (value("beta") - value("mean") * scale).tolist()


@pytest.mark.parametrize("nhwc", [False, True])
def test_uint8_input_is_an_rgb_image(tmp_path, nhwc):
    """--input-type uint8: a Core ML image input (what an app passes as a CVPixelBuffer), whose
    0-255 pixel values the program itself normalises (mean / std of the model, per channel).
    Converted only: nothing runs Core ML off macOS, so the manifest keeps it unverified."""
    import coremltools as ct
    import numpy as np

    from edgecls.export.pipeline import ExportConfig, run_export
    from edgecls.manifest import UNVERIFIED as UNVERIFIED_STATUS
    from edgecls.runtime.registry import read_metadata

    run = run_export(ExportConfig(model=MODEL, formats=["coreml"], input_type="uint8", nhwc=nhwc,
                                  resolution=RESOLUTION, calib_size=4, out=tmp_path))
    (entry,) = run.artifacts
    expected_status = "passed" if sys.platform == "darwin" else UNVERIFIED_STATUS
    assert entry["status"] == expected_status, entry["error"]
    path = tmp_path / entry["file"]
    (given,) = ct.models.MLModel(str(path), skip_model_load=True).get_spec().description.input
    assert given.type.WhichOneof("Type") == "imageType"
    image = given.type.imageType
    assert (image.width, image.height) == (RESOLUTION, RESOLUTION)
    assert image.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    meta = read_metadata(path)
    assert meta["input_type"] == "uint8" and meta["input_kind"] == "image"
    info = edgecls.create_model(MODEL).edgecls_info
    source, scale, shift = _first_affine(path)
    assert source == "input"  # nothing (no image scale / bias) between the pixels and the normalisation
    np.testing.assert_allclose(scale, 1 / (255 * np.asarray(info.std)), rtol=1e-4)
    np.testing.assert_allclose(shift, -np.asarray(info.mean) / np.asarray(info.std), rtol=1e-4, atol=1e-5)


def _convert_at_64(model, precision: str, dest, tmp_path):
    """The exporter on ``model`` at 64 px (4 calibration views); the package's spec, its input checked."""
    import coremltools as ct

    sets = builtin_sets(model.edgecls_info, 64, 4)
    request = ExportRequest(model=model, info=model.edgecls_info, resolution=64, batch=1, dynamic_batch=False,
                            nhwc=False, opset=18, calibration=sets.calibration, workdir=tmp_path)
    exporter_class("coreml")().export(request, precision, dest)
    spec = ct.models.MLModel(str(dest), skip_model_load=True).get_spec()
    assert list(spec.description.input[0].type.multiArrayType.shape) == [1, 3, 64, 64]
    return spec


def test_attention_model_converts(tmp_path):
    """A ViT converts: its traced graph once computed shapes with aten::floor_divide / aten::mul +
    aten::Int (split_heads' c // heads, the class token's expand(batch, ...)), which coremltools 9
    rejected with "only 0-dimensional arrays can be converted to Python scalars"."""
    torch.manual_seed(0)
    model = edgecls.create_model("vit_tiny_patch16_224", resolution=64).eval()
    dest = tmp_path / "vit.mlpackage"
    _convert_at_64(model, "fp32", dest, tmp_path)
    assert _ops(dest).get("softmax", 0) == 12  # one attention per block survived conversion


def test_tf_same_padding_model_converts_to_int8(tmp_path):
    """tf_efficientnet_* pad TensorFlow-'SAME' from the input size; coremltools' int8 quantizer traces
    with torch.fx, where that size is a Proxy ("int() argument must be ... not 'Proxy'"). The export
    fixes the padding for its resolution first; the float model must compute exactly the same."""
    from edgecls.models.layers import Conv2dSame, freeze_same_padding

    torch.manual_seed(0)
    model = edgecls.create_model("tf_efficientnet_lite0", resolution=64).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    frozen = copy.deepcopy(model)
    assert freeze_same_padding(frozen, x[:1]) == sum(isinstance(m, Conv2dSame) for m in model.modules()) > 0
    assert not any(isinstance(m, Conv2dSame) for m in frozen.modules())
    with torch.no_grad():
        assert torch.equal(frozen(x), before)

    dest = tmp_path / "lite0_int8.mlpackage"
    _convert_at_64(model, "int8", dest, tmp_path)
    assert any(op.startswith("quantize") or op.startswith("dequantize") for op in _ops(dest)), _ops(dest)
    with torch.no_grad():  # the export worked on its own copy: the caller's model keeps its SAME convs
        assert torch.equal(model(x), before)
