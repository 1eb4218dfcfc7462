"""MobileNetV2 (Sandler et al., 2018); its blocks (shared with V1/V3 and EfficientNet) are in layers.py.

Module names follow timm's (``conv_stem``, ``bn1``, ``blocks.<stage>.<index>.conv_pw`` ...), so
timm checkpoints load as they are; torchvision's numbering is mapped by a converter built from the
same config table. Channel counts at every width come from ``make_divisible``, the rule of both
reference implementations, so width variants stay checkpoint-compatible with timm.
"""

from __future__ import annotations

import re

from torch import nn

from edgecls.models.layers import DepthwiseSeparable, InvertedResidual, MobileNetBase, check_width, make_divisible
from edgecls.models.registry import register_model
from edgecls.weights import rename_layout

def scaled_channels(channels: int, width: float) -> int:
    """Channels of a layer at width multiplier ``width`` (timm's ``round_channels``)."""
    return make_divisible(channels * width)


# Per stage: (expansion ratio, out channels, repeats, stride of the first block), the paper's
# Table 2. Stage 0 (expansion 1) is a depthwise-separable block without the expansion conv.
MOBILENETV2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENETV2_STEM = 32
MOBILENETV2_HEAD = 1280


def _torchvision_rules() -> list[tuple[str, str]]:
    """Rename rules from torchvision's flat ``features.<n>`` numbering to timm's stage/block names."""
    rules = [(r"features\.0\.0\.(.+)", r"conv_stem.\1"), (r"features\.0\.1\.(.+)", r"bn1.\1")]
    n = 1
    for stage, (expansion, _, repeats, _) in enumerate(MOBILENETV2_STAGES):
        for block in range(repeats):
            dst = f"blocks.{stage}.{block}"
            if expansion == 1:
                parts = (("conv.0.0", "conv_dw"), ("conv.0.1", "bn1"), ("conv.1", "conv_pw"), ("conv.2", "bn2"))
            else:
                parts = (("conv.0.0", "conv_pw"), ("conv.0.1", "bn1"), ("conv.1.0", "conv_dw"),
                         ("conv.1.1", "bn2"), ("conv.2", "conv_pwl"), ("conv.3", "bn3"))
            rules += [(rf"features\.{n}\.{re.escape(src)}\.([^.]+)", rf"{dst}.{name}.\1") for src, name in parts]
            n += 1
    rules += [
        (rf"features\.{n}\.0\.(.+)", r"conv_head.\1"),
        (rf"features\.{n}\.1\.(.+)", r"bn2.\1"),
        (r"classifier\.1\.(.+)", r"classifier.\1"),
    ]
    return rules


class MobileNetV2(MobileNetBase):
    # timm's names are this model's own, so timm checkpoints load as layout "edgecls".
    checkpoint_layouts = {"torchvision": rename_layout(_torchvision_rules())}

    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        width = check_width(width)
        stem_ch = scaled_channels(MOBILENETV2_STEM, width)
        # The head is never narrowed below 1280 (only widened), as in the paper and timm.
        head_ch = max(MOBILENETV2_HEAD, scaled_channels(MOBILENETV2_HEAD, width))
        self.init_stem(stem_ch, nn.ReLU6)

        def block(in_ch: int, row: tuple[int, int, int]) -> tuple[nn.Module, int]:
            expansion, out, stride = row
            out_ch = scaled_channels(out, width)
            if expansion == 1:
                return DepthwiseSeparable(in_ch, out_ch, 3, stride, act=nn.ReLU6), out_ch
            return InvertedResidual(in_ch, out_ch, make_divisible(in_ch * expansion), 3, stride, act=nn.ReLU6), out_ch

        # A stage's first block strides, the others keep the size.
        in_ch = self.init_blocks(stem_ch, [[(expansion, out, first_stride if i == 0 else 1) for i in range(repeats)]
                                           for expansion, out, repeats, first_stride in MOBILENETV2_STAGES], block)
        self.init_head(in_ch, head_ch, num_classes, dropout, nn.ReLU6)


def _mobilenetv2(width: float, num_classes: int, **kwargs) -> MobileNetV2:
    return MobileNetV2(width=width, num_classes=num_classes, **kwargs)


# top1 is None where timm publishes no weights for that width (mobilenetv2_035/_075 are "untrained").
@register_model(resolution=224, references=("timm:mobilenetv2_035",), top1=None, paper_madds=59)
def mobilenetv2_035(num_classes: int = 1000, **kwargs) -> MobileNetV2:
    return _mobilenetv2(0.35, num_classes, **kwargs)


@register_model(resolution=224, references=("timm:mobilenetv2_050",), top1=65.95, paper_madds=97)
def mobilenetv2_050(num_classes: int = 1000, **kwargs) -> MobileNetV2:
    return _mobilenetv2(0.5, num_classes, **kwargs)


@register_model(resolution=224, references=("timm:mobilenetv2_075",), top1=None, paper_madds=209)
def mobilenetv2_075(num_classes: int = 1000, **kwargs) -> MobileNetV2:
    return _mobilenetv2(0.75, num_classes, **kwargs)


@register_model(resolution=224, references=("timm:mobilenetv2_100", "torchvision:mobilenet_v2"), top1=72.98,
                paper_madds=300)
def mobilenetv2_100(num_classes: int = 1000, **kwargs) -> MobileNetV2:
    return _mobilenetv2(1.0, num_classes, **kwargs)


@register_model(resolution=224, references=("timm:mobilenetv2_140",), top1=76.52, paper_madds=585)
def mobilenetv2_140(num_classes: int = 1000, **kwargs) -> MobileNetV2:
    return _mobilenetv2(1.4, num_classes, **kwargs)
