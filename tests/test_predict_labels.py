"""``edgecls predict`` names classes by the labels each artifact embeds.

A 3-class checkpoint whose class names are nothing ImageNet has (so a fallback to ImageNet names,
or to indices, cannot pass) is exported to one format per test; the artifact and its side files are
then copied alone into an empty folder (no manifest, no checkpoint beside it), so the names can come
only from the artifact: ONNX metadata props, OpenVINO rt_info, TFLite metadata, the ExecuTorch /
NCNN sidecar; Core ML's user-defined metadata is read (Core ML cannot predict off macOS).

Reference: the PyTorch model with the checkpoint's weights on the same photo (its logit order,
which a fixed classifier bias makes unambiguous).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgecls.manifest import UNVERIFIED

torch = pytest.importorskip("torch")

import edgecls  # noqa: E402
from cli_inprocess import run_cli  # noqa: E402
from edgecls import formats  # noqa: E402
from edgecls.export.pipeline import ExportConfig, run_export  # noqa: E402
from edgecls.preprocess import builtin_photo_path, load_image, preprocess_for  # noqa: E402

MODEL = "mobilenetv2_035"
RESOLUTION = 32
CLASSES = ["quokka_42", "tram_ticket_7", "blue_teapot_x"]
PHOTO = "astronaut"
# (format, Python modules its converter and runtime need)
NEEDS = {"onnx": ("onnx", "onnxruntime"), "openvino": ("openvino",), "tflite": ("litert_torch", "ai_edge_litert"),
         "executorch": ("executorch",), "ncnn": ("pnnx", "ncnn"), "coreml": ("coremltools",)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = edgecls.create_model(MODEL, num_classes=len(CLASSES)).eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # the features of random weights are tiny: the bias decides the order, 1 > 2 > 0
        head.bias.copy_(torch.tensor([0.0, 3.0, 1.5]))
    path = root / "three.pt"
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"classes": CLASSES}))
    image = preprocess_for(model.edgecls_info, load_image(builtin_photo_path(PHOTO)), RESOLUTION)
    with torch.no_grad():
        logits = model(torch.from_numpy(image[None])).numpy()[0]
    return path, [CLASSES[i] for i in np.argsort(-logits, kind="stable")]


def _alone(tmp_path, out, entry) -> str:
    """The artifact and its side files copied into an empty folder: nothing but the files themselves."""
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in formats.get_format(entry["format"]).files(out / entry["file"]):
        (shutil.copytree if path.is_dir() else shutil.copy)(path, bare / path.name)
    return str(bare / entry["file"])


@pytest.mark.parametrize("fmt", list(NEEDS))
def test_predict_prints_the_embedded_class_names(tmp_path, checkpoint, fmt):
    for module in NEEDS[fmt]:
        pytest.importorskip(module)
    weights, expected_order = checkpoint
    assert expected_order[0] == CLASSES[1]  # the bias did decide it
    out = tmp_path / "out"
    run = run_export(ExportConfig(model=MODEL, weights=weights, num_classes=len(CLASSES), formats=[fmt],
                                  resolution=RESOLUTION, calib_size=4, out=out))
    (entry,) = run.artifacts
    assert entry["status"] in ("passed", UNVERIFIED), entry["error"]
    artifact = _alone(tmp_path, out, entry)
    from edgecls.runtime.registry import read_metadata

    assert read_metadata(artifact)["labels"] == CLASSES
    if not formats.get_format(fmt).runs_here():
        return  # Core ML off macOS: its labels are embedded; predicting needs macOS
    image = str(builtin_photo_path(PHOTO))
    result = run_cli("predict", artifact, image, "--top-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    top = json.loads(result.stdout)["predictions"][0]["top"]
    assert [t["label"] for t in top] == expected_order
    assert all(t["label"] == CLASSES[t["index"]] for t in top)
    text = run_cli("predict", artifact, image, "--top-k", "3").stdout
    assert all(name in text for name in CLASSES)
