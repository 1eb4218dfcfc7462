"""MobileNetV3 Large and Small (Howard et al., 2019).

Module names follow timm's, so timm checkpoints load as they are. torchvision's checkpoints of the
same networks load through a converter that renames its flat ``features.<n>`` numbering, turns
its linear head layer into the 1x1 ``conv_head`` and folds its BatchNorm eps (1e-3, this model
uses PyTorch's 1e-5 like timm) into the running variances, which is exact.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from edgecls.models.layers import (
    ConvBnActBlock,
    DepthwiseSeparable,
    InvertedResidual,
    MobileNetBase,
    SqueezeExcite,
    check_width,
    make_divisible,
)
from edgecls.models.mobilenetv2 import scaled_channels
from edgecls.models.registry import register_model
from edgecls.weights import StateDict, rename_layout

ACTIVATIONS = {"RE": nn.ReLU, "HS": nn.Hardswish}

# Per stage, per block: (kind, kernel, expansion, out channels, squeeze-excite, activation, stride),
# the paper's Tables 1 and 2 with expanded sizes written as ratios (as timm does, so the ratios
# carry over to other widths). "ds": depthwise-separable, "ir": inverted residual, "cn": 1x1 conv.
MOBILENETV3_CONFIGS = {
    "large": (
        (("ds", 3, 1, 16, False, "RE", 1),),
        (("ir", 3, 4, 24, False, "RE", 2), ("ir", 3, 3, 24, False, "RE", 1)),
        (("ir", 5, 3, 40, True, "RE", 2), ("ir", 5, 3, 40, True, "RE", 1), ("ir", 5, 3, 40, True, "RE", 1)),
        (("ir", 3, 6, 80, False, "HS", 2), ("ir", 3, 2.5, 80, False, "HS", 1),
         ("ir", 3, 2.3, 80, False, "HS", 1), ("ir", 3, 2.3, 80, False, "HS", 1)),
        (("ir", 3, 6, 112, True, "HS", 1), ("ir", 3, 6, 112, True, "HS", 1)),
        (("ir", 5, 6, 160, True, "HS", 2), ("ir", 5, 6, 160, True, "HS", 1), ("ir", 5, 6, 160, True, "HS", 1)),
        (("cn", 1, 1, 960, False, "HS", 1),),
    ),
    "small": (
        (("ds", 3, 1, 16, True, "RE", 2),),
        (("ir", 3, 4.5, 24, False, "RE", 2), ("ir", 3, 3.67, 24, False, "RE", 1)),
        (("ir", 5, 4, 40, True, "HS", 2), ("ir", 5, 6, 40, True, "HS", 1), ("ir", 5, 6, 40, True, "HS", 1)),
        (("ir", 5, 3, 48, True, "HS", 1), ("ir", 5, 3, 48, True, "HS", 1)),
        (("ir", 5, 6, 96, True, "HS", 2), ("ir", 5, 6, 96, True, "HS", 1), ("ir", 5, 6, 96, True, "HS", 1)),
        (("cn", 1, 1, 576, False, "HS", 1),),
    ),
}
MOBILENETV3_STEM = 16
# The head width is not scaled with the width multiplier.
MOBILENETV3_HEAD = {"large": 1280, "small": 1024}
SE_RATIO = 0.25
BN_EPS = 1e-5  # this model's (PyTorch's default, timm's)
TORCHVISION_BN_EPS = 1e-3


def _squeeze_excite(channels: int) -> nn.Module:
    return SqueezeExcite(channels, make_divisible(channels * SE_RATIO), act=nn.ReLU, gate=nn.Hardsigmoid)


def _torchvision_converter(variant: str) -> Callable[[StateDict], dict]:
    """torchvision's mobilenet_v3_<variant> state dict -> this model's."""
    rules = [(r"features\.0\.0\.(.+)", r"conv_stem.\1"), (r"features\.0\.1\.(.+)", r"bn1.\1")]
    n = 1
    for stage, blocks in enumerate(MOBILENETV3_CONFIGS[variant]):
        for index, (kind, _, _, _, use_se, _, _) in enumerate(blocks):
            src, dst = rf"features\.{n}", f"blocks.{stage}.{index}"
            if kind == "cn":
                rules += [(rf"{src}\.0\.(.+)", rf"{dst}.conv.\1"), (rf"{src}\.1\.(.+)", rf"{dst}.bn1.\1")]
            else:
                # torchvision numbers the parts of a block in order: [expand,] depthwise, [SE,] project.
                convs = (("conv_pw", "bn1"), ("conv_dw", "bn2")) if kind == "ir" else (("conv_dw", "bn1"),)
                part = 0
                for conv, bn in convs:
                    rules += [(rf"{src}\.block\.{part}\.0\.(.+)", rf"{dst}.{conv}.\1"),
                              (rf"{src}\.block\.{part}\.1\.(.+)", rf"{dst}.{bn}.\1")]
                    part += 1
                if use_se:
                    rules += [(rf"{src}\.block\.{part}\.fc1\.(.+)", rf"{dst}.se.conv_reduce.\1"),
                              (rf"{src}\.block\.{part}\.fc2\.(.+)", rf"{dst}.se.conv_expand.\1")]
                    part += 1
                project = ("conv_pwl", "bn3") if kind == "ir" else ("conv_pw", "bn2")
                rules += [(rf"{src}\.block\.{part}\.0\.(.+)", rf"{dst}.{project[0]}.\1"),
                          (rf"{src}\.block\.{part}\.1\.(.+)", rf"{dst}.{project[1]}.\1")]
            n += 1
    rules += [(r"classifier\.0\.(.+)", r"conv_head.\1"), (r"classifier\.3\.(.+)", r"classifier.\1")]
    rename = rename_layout(rules)

    def convert(state_dict: StateDict) -> dict:
        out = rename(state_dict)
        if out.get("conv_head.weight") is not None and out["conv_head.weight"].dim() == 2:
            out["conv_head.weight"] = out["conv_head.weight"][:, :, None, None]
        # sqrt(v + 1e-3) is sqrt((v + 1e-3 - 1e-5) + 1e-5): the same normalisation under this model's eps.
        eps_shift = TORCHVISION_BN_EPS - BN_EPS
        return {k: v + eps_shift if k.endswith("running_var") else v for k, v in out.items()}

    return convert


class MobileNetV3(MobileNetBase):
    # timm's names are this model's own, so timm checkpoints load as layout "edgecls"; the
    # torchvision layout depends on the variant, so the two subclasses below carry it.
    checkpoint_layouts: dict = {}

    def __init__(self, variant: str = "large", width: float = 1.0, num_classes: int = 1000,
                 dropout: float = 0.2) -> None:
        super().__init__()
        width = check_width(width)
        # Below 0.75 the 16-channel stem stays as it is (timm's rule; at 0.75 it rounds back to 16).
        stem_ch = scaled_channels(MOBILENETV3_STEM, width) if width >= 0.75 else MOBILENETV3_STEM
        self.init_stem(stem_ch, nn.Hardswish)

        def block(in_ch: int, row: tuple) -> tuple[nn.Module, int]:
            kind, kernel, expansion, out, use_se, act_name, stride = row
            out_ch = scaled_channels(out, width)
            act = ACTIVATIONS[act_name]
            se = _squeeze_excite if use_se else None
            if kind == "ds":
                return DepthwiseSeparable(in_ch, out_ch, kernel, stride, act=act, se=se), out_ch
            if kind == "ir":
                mid_ch = make_divisible(in_ch * expansion)
                return InvertedResidual(in_ch, out_ch, mid_ch, kernel, stride, act=act, se=se), out_ch
            return ConvBnActBlock(in_ch, out_ch, kernel, stride, act=act), out_ch

        in_ch = self.init_blocks(stem_ch, MOBILENETV3_CONFIGS[variant], block)
        # The "efficient last stage": pool first, then a 1x1 conv (with bias, no BN) as the head.
        self.init_head(in_ch, MOBILENETV3_HEAD[variant], num_classes, dropout, nn.Hardswish, norm=None,
                       pool_first=True)


class MobileNetV3Large(MobileNetV3):
    checkpoint_layouts = {"torchvision": _torchvision_converter("large")}

    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__("large", width, num_classes, dropout)


class MobileNetV3Small(MobileNetV3):
    checkpoint_layouts = {"torchvision": _torchvision_converter("small")}

    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__("small", width, num_classes, dropout)


@register_model(resolution=224, references=("timm:mobilenetv3_large_100", "torchvision:mobilenet_v3_large"),
                top1=75.77, paper_madds=219)
def mobilenetv3_large_100(num_classes: int = 1000, **kwargs) -> MobileNetV3Large:
    return MobileNetV3Large(width=1.0, num_classes=num_classes, **kwargs)


# timm publishes no weights for mobilenetv3_large_075 ("untrained"), so no top-1.
@register_model(resolution=224, references=("timm:mobilenetv3_large_075",), top1=None, paper_madds=155)
def mobilenetv3_large_075(num_classes: int = 1000, **kwargs) -> MobileNetV3Large:
    return MobileNetV3Large(width=0.75, num_classes=num_classes, **kwargs)


@register_model(resolution=224, references=("timm:mobilenetv3_small_100", "torchvision:mobilenet_v3_small"),
                top1=67.66, paper_madds=56)
def mobilenetv3_small_100(num_classes: int = 1000, **kwargs) -> MobileNetV3Small:
    return MobileNetV3Small(width=1.0, num_classes=num_classes, **kwargs)


@register_model(resolution=224, references=("timm:mobilenetv3_small_075",), top1=65.23, paper_madds=44)
def mobilenetv3_small_075(num_classes: int = 1000, **kwargs) -> MobileNetV3Small:
    return MobileNetV3Small(width=0.75, num_classes=num_classes, **kwargs)
