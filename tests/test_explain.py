"""`edgecls explain`: Grad-CAM family maps look at the cat; the int8 artifact's occlusion map is compared with fp32's.

The photo: scikit-image's `chelsea` (a cat) pasted into scikit-image's `coffee` (a cup on a saucer),
so a map that spreads over the whole image cannot pass; the box is where the cat was pasted,
carried through the model's resize and centre crop.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_inprocess import run_cli

from edgecls.explain import box_mass, explain

TIGER_CAT = 282
CANVAS, PASTE, CAT_SIZE = 448, (40, 150), (224, 149)


def _cat_box() -> tuple[float, float, float, float]:
    # tf_efficientnet_lite0: resize the shorter side to 224 / 0.875 = 256, centre-crop 224.
    scale, offset = 256 / CANVAS, (256 - 224) / 2
    left, top = PASTE
    right, bottom = left + CAT_SIZE[0], top + CAT_SIZE[1]
    return tuple((v * scale - offset) / 224 for v in (left, top, right, bottom))


BOX = _cat_box()
BOX_AREA = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])  # 0.22 of the input


@pytest.fixture(scope="module")
def cat_photo(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    canvas = Image.fromarray(data.coffee()).resize((CANVAS, CANVAS), Image.BICUBIC)
    canvas.paste(Image.fromarray(data.chelsea()).resize(CAT_SIZE, Image.BICUBIC), PASTE)
    path = tmp_path_factory.mktemp("explain") / "cat_on_coffee.png"
    canvas.save(path)
    return path


def _mass(out: Path, method: str) -> float:
    return box_mass(np.load(out / f"cat_on_coffee_{method.replace('++', 'pp')}.npy"), BOX)


def test_gradcam_matches_autograd_on_the_feature_map() -> None:
    """The hooked Grad-CAM equals one computed from torch.autograd.grad on the model's own feature map."""
    import torch
    import torch.nn.functional as F

    import edgecls
    from edgecls.explain import cam_torch

    torch.manual_seed(0)
    model = edgecls.create_model("efficientnet_b0", num_classes=7)
    x = torch.randn(1, 3, 64, 64)
    cam, cls, _ = cam_torch(model, x, 3, "gradcam")
    features = model.forward_features(x)  # efficientnet: act2(bn2(conv_head(...)))
    logits = model.classifier(features.mean((2, 3)))
    (grad,) = torch.autograd.grad(logits[0, 3], features)
    reference = F.relu((grad[0].mean((1, 2))[:, None, None] * features[0]).sum(0))
    reference = F.interpolate(reference[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    reference = (reference - reference.min()) / (reference.max() - reference.min())
    assert cls == 3
    np.testing.assert_allclose(cam, reference.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_pretrained_maps_fall_on_the_cat(cat_photo, tmp_path, method) -> None:
    result = explain("tf_efficientnet_lite0", [cat_photo], class_index=TIGER_CAT, method=method, pretrained=True,
                     out=tmp_path / "pretrained")
    pretrained = _mass(tmp_path / "pretrained", method)
    explain("tf_efficientnet_lite0", [cat_photo], class_index=TIGER_CAT, method=method, out=tmp_path / "random")
    random = _mass(tmp_path / "random", method)
    print(f"{method}: mass in the cat box {pretrained:.3f} pretrained, {random:.3f} random weights "
          f"(box area {BOX_AREA:.3f})")
    assert result["images"][0]["label"] == "tiger cat"
    assert Path(result["images"][0]["overlay"]).is_file()
    # Measured (AVX2 EPYC): Grad-CAM 0.64 / 0.09, Grad-CAM++ 0.47 / 0.27, Score-CAM 0.49 / 0.28.
    assert pretrained > 2 * BOX_AREA
    assert random < 0.4 and pretrained - random > 0.15
    if method == "gradcam":
        assert pretrained > 0.5


def test_int8_artifact_map_compared_with_fp32(cat_photo, tmp_path) -> None:
    import edgecls
    from edgecls.export.base import ExportRequest
    from edgecls.export.calibration import builtin_sets
    from edgecls.export.onnx import OnnxExporter

    # The converter directly, not the pipeline: the maps are compared whatever the artifact's parity
    # (Lite0 int8 ONNX misses the 95 % agreement gate on the held-out photos, see issue 9), so the
    # artifact has no manifest and names its model with `reference`.
    model = edgecls.create_model("tf_efficientnet_lite0", pretrained=True)
    sets = builtin_sets(model.edgecls_info, 224, 32)
    artifact = tmp_path / "lite0_int8.onnx"
    OnnxExporter().export(ExportRequest(model=model, info=model.edgecls_info, resolution=224, batch=1,
                                        dynamic_batch=False, nhwc=False, opset=18, calibration=sets.calibration,
                                        workdir=tmp_path), "int8", artifact)
    result = explain(str(artifact), [cat_photo], class_index=TIGER_CAT, pretrained=True,
                     reference="tf_efficientnet_lite0", out=tmp_path / "int8")
    item = result["images"][0]
    print(f"int8 ONNX vs fp32 PyTorch occlusion maps: {item['similarity']}")
    assert result["model"] == "tf_efficientnet_lite0"
    assert item["similarity"]["pearson"] > 0.8
    masses = {name: box_mass(np.load(tmp_path / "int8" / f"cat_on_coffee_occlusion_{name}.npy"), BOX)
              for name in ("torch", "artifact")}
    print(f"occlusion mass in the cat box: {masses} (box area {BOX_AREA:.3f})")
    # The fp32 map holds 2.3x the box's share of the mass. The int8 map's shape follows it (Pearson
    # 0.944 with or without bias correction) but its noise outside the box moves with the recipe:
    # measured (AVX2 EPYC, 2026-12-08) 0.465 of the mass without bias correction, 0.386 (1.8x) with
    # it; chelsea on coffee is a tabby / tiger cat near tie, so occluded patches flip probability.
    assert masses["torch"] > 2 * BOX_AREA
    assert masses["artifact"] > 1.5 * BOX_AREA


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


def test_bad_input_is_one_line(cat_photo, tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for args, needle in (((str(text),), "not a readable image"),
                         ((str(cat_photo), "--class", "1000"), "out of range")):
        proc = _cli("explain", "tf_efficientnet_lite0", *args, "--pretrained", "--out", str(tmp_path / "x"))
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
