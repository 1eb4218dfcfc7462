"""MobileNetV1 (Howard et al., 2017): a stem conv and 13 depthwise-separable blocks.

Module names follow timm's ``mobilenetv1_*`` (stem, five stages of blocks, no head conv), so its
checkpoints load as they are. The narrower variants are the same network with every layer scaled
by the width multiplier and rounded by ``make_divisible``, as timm does; they use ReLU6 like the
timm weights.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecls.models.layers import DepthwiseSeparable, check_width
from edgecls.models.mobilenetv2 import scaled_channels
from edgecls.models.registry import INCEPTION_MEAN, INCEPTION_STD, register_model

# Per stage: (out channels, repeats, stride of the first block), the paper's Table 1 grouped by
# output resolution.
MOBILENETV1_STAGES = (
    (64, 1, 1),
    (128, 2, 2),
    (256, 2, 2),
    (512, 6, 2),
    (1024, 2, 2),
)
MOBILENETV1_STEM = 32


class MobileNetV1(nn.Module):
    # timm's names are this model's own, so timm checkpoints load as layout "edgecls".
    checkpoint_layouts: dict = {}

    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.0) -> None:
        super().__init__()
        width = check_width(width)
        stem_ch = scaled_channels(MOBILENETV1_STEM, width)
        self.conv_stem = nn.Conv2d(3, stem_ch, 3, 2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_ch)
        self.act1 = nn.ReLU6()

        stages: list[nn.Module] = []
        in_ch = stem_ch
        for out, repeats, first_stride in MOBILENETV1_STAGES:
            out_ch = scaled_channels(out, width)
            blocks = []
            for i in range(repeats):
                # V1 blocks activate after the pointwise conv too and never add a residual.
                blocks.append(DepthwiseSeparable(in_ch, out_ch, 3, first_stride if i == 0 else 1, act=nn.ReLU6,
                                                 pw_act=True, residual=False))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)

        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.classifier(self.dropout(x.mean((2, 3))))


_V1_META = dict(resolution=224, mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.875, interpolation="bicubic")


@register_model(references=("timm:mobilenetv1_100",), top1=75.38, paper_madds=569, **_V1_META)
def mobilenetv1_100(num_classes: int = 1000, **kwargs) -> MobileNetV1:
    return MobileNetV1(width=1.0, num_classes=num_classes, **kwargs)


# The narrower widths have no published weights of this network (timm's ra4 recipe trained 1.0
# only); the paper's Table 6 gives their multiply-adds.
@register_model(top1=None, paper_madds=325, **_V1_META)
def mobilenetv1_075(num_classes: int = 1000, **kwargs) -> MobileNetV1:
    return MobileNetV1(width=0.75, num_classes=num_classes, **kwargs)


@register_model(top1=None, paper_madds=149, **_V1_META)
def mobilenetv1_050(num_classes: int = 1000, **kwargs) -> MobileNetV1:
    return MobileNetV1(width=0.5, num_classes=num_classes, **kwargs)


@register_model(top1=None, paper_madds=41, **_V1_META)
def mobilenetv1_025(num_classes: int = 1000, **kwargs) -> MobileNetV1:
    return MobileNetV1(width=0.25, num_classes=num_classes, **kwargs)
