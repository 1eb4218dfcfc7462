"""Every zoo model builds, runs at batch 1 and 2, exports with torch.export, and rejects bad input."""

from __future__ import annotations

import pytest
import torch

import edgecls
from edgecls.errors import CheckpointError, InvalidArgumentError, UnknownModelError
from edgecls.models import ALIASES, get_model_info, list_models

ALL = list_models()
REQUIRED = (
    [f"mobilenetv1_{w}" for w in ("100", "075", "050", "025")]
    + [f"mobilenetv2_{w}" for w in ("035", "050", "075", "100", "140")]
    + ["mobilenetv3_large_100", "mobilenetv3_large_075", "mobilenetv3_small_100", "mobilenetv3_small_075"]
    + ["squeezenet1_0", "squeezenet1_1"]
    + [f"efficientnet_b{i}" for i in range(8)]
    + ["efficientnet_lite0"] + [f"tf_efficientnet_lite{i}" for i in range(5)]
    + [f"mobileformer_{s}m" for s in (26, 52, 96, 151, 214, 294, 508)]
    + [f"mobilevitv2_{w}" for w in ("050", "075", "100", "125", "150", "175", "200")]
)


def test_zoo_has_every_required_name() -> None:
    missing = [n for n in REQUIRED if n not in ALL]
    assert not missing, f"models not registered: {missing}"


def test_aliases_resolve() -> None:
    for alias, target in ALIASES.items():
        if target in ALL:
            assert edgecls.resolve_name(alias) == target


@pytest.mark.parametrize("name", ALL)
def test_forward_batches_and_torch_export(name: str) -> None:
    info = get_model_info(name)
    model = edgecls.create_model(name, num_classes=10)
    torch.manual_seed(0)
    # Native resolution up to 224 (B5-B7 at 456-600 px would triple the suite's time for no new code path).
    side = min(info.resolution, 224)
    side -= side % info.resolution_multiple
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        both = model(x)
        first = model(x[:1])
    assert both.shape == (2, 10) and first.shape == (1, 10)
    assert torch.isfinite(both).all()
    # Batch elements are independent in eval mode (no batch statistics leak between them).
    torch.testing.assert_close(both[:1], first, rtol=1e-4, atol=1e-4)
    exported = torch.export.export(model, (x[:1],))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x[:1]), first, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_profiles_on_meta_device(name: str) -> None:
    """`edgecls models` counts on the meta device: every model must trace there (no stray CPU tensors)."""
    from edgecls.profile import model_summary

    row = model_summary(name)
    assert row["params"] > 0 and row["macs"] > 0


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="did you mean.*squeezenet1_1"):
        edgecls.create_model("squeezenet1_l")


def test_bad_arguments_raise_typed_errors() -> None:
    with pytest.raises(InvalidArgumentError):
        edgecls.create_model("squeezenet1_1", num_classes=0)
    with pytest.raises(InvalidArgumentError):
        get_model_info("squeezenet1_1").check_resolution(8)
    with pytest.raises(InvalidArgumentError, match="does not take 'width'"):
        edgecls.create_model("mobilenetv2_100", width=2.0)
    from edgecls.models.layers import check_width

    for width in (0, -1.0, float("nan"), 100):
        with pytest.raises(InvalidArgumentError, match="width"):
            check_width(width)


def test_checkpoint_of_wrong_model_is_rejected(tmp_path) -> None:
    other = edgecls.create_model("squeezenet1_0").state_dict()
    with pytest.raises(CheckpointError, match="does not fit squeezenet1_1"):
        edgecls.create_model("squeezenet1_1", weights=other)
    torch.save(other, tmp_path / "sq10.pth")
    with pytest.raises(CheckpointError):
        edgecls.create_model("squeezenet1_1", weights=tmp_path / "sq10.pth")


def test_corrupt_and_missing_checkpoint_files(tmp_path) -> None:
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        edgecls.create_model("squeezenet1_1", weights=bad)
    with pytest.raises(CheckpointError, match="not found"):
        edgecls.create_model("squeezenet1_1", weights=tmp_path / "nope.pth")


def test_checkpoint_roundtrip_formats(tmp_path) -> None:
    """A state dict saved as .pth (wrapped, DataParallel-prefixed) and .safetensors loads back exactly."""
    from safetensors.torch import save_file

    src = edgecls.create_model("squeezenet1_1")
    for p in src.parameters():
        torch.nn.init.normal_(p, std=0.02)
    state = src.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    x = torch.randn(1, 3, 96, 96)
    for file in ("w.pth", "w.safetensors"):
        model = edgecls.create_model("squeezenet1_1", weights=tmp_path / file)
        torch.testing.assert_close(model(x), src.eval()(x))
