"""MobileNetV4 conv-only models (Qin et al., 2024): Small and Medium.

Built from three blocks: plain convs, the fused inverted bottleneck ("edge residual": one full kxk
expansion conv) and the Universal Inverted Bottleneck (UIB), whose optional depthwise convs before
and after the expansion make it an inverted residual, a ConvNeXt-like block, an FFN or the
"extra depthwise" block. Module names follow timm's, so its checkpoints load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecls.models.layers import ActLayer, ConvBnAct, ConvBnActBlock, MobileNetBase, check_width, make_divisible
from edgecls.models.mobilenetv2 import scaled_channels
from edgecls.models.registry import register_model

# Per stage, per block, by kind:
#   ("cn", kernel, stride, out)                                plain conv -> BN -> ReLU
#   ("er", kernel, stride, expansion, out)                     fused inverted bottleneck
#   ("uir", start dw kernel, mid dw kernel, stride, expansion, out)   UIB; kernel 0 = no such conv
# from the paper's Tables 10 and 11 (timm's arch strings for the same networks).
MOBILENETV4_CONFIGS = {
    "conv_small": (
        (("cn", 3, 2, 32), ("cn", 1, 1, 32)),
        (("cn", 3, 2, 96), ("cn", 1, 1, 64)),
        (("uir", 5, 5, 2, 3, 96),) + (("uir", 0, 3, 1, 2, 96),) * 4 + (("uir", 3, 0, 1, 4, 96),),
        (("uir", 3, 3, 2, 6, 128), ("uir", 5, 5, 1, 4, 128), ("uir", 0, 5, 1, 4, 128), ("uir", 0, 5, 1, 3, 128),
         ("uir", 0, 3, 1, 4, 128), ("uir", 0, 3, 1, 4, 128)),
        (("cn", 1, 1, 960),),
    ),
    "conv_medium": (
        (("er", 3, 2, 4, 48),),
        (("uir", 3, 5, 2, 4, 80), ("uir", 3, 3, 1, 2, 80)),
        (("uir", 3, 5, 2, 6, 160), ("uir", 3, 3, 1, 4, 160), ("uir", 3, 3, 1, 4, 160), ("uir", 3, 5, 1, 4, 160),
         ("uir", 3, 3, 1, 4, 160), ("uir", 3, 0, 1, 4, 160), ("uir", 0, 0, 1, 2, 160), ("uir", 3, 0, 1, 4, 160)),
        (("uir", 5, 5, 2, 6, 256), ("uir", 5, 5, 1, 4, 256), ("uir", 3, 5, 1, 4, 256), ("uir", 3, 5, 1, 4, 256),
         ("uir", 0, 0, 1, 4, 256), ("uir", 3, 0, 1, 4, 256), ("uir", 3, 5, 1, 2, 256), ("uir", 5, 5, 1, 4, 256),
         ("uir", 0, 0, 1, 4, 256), ("uir", 0, 0, 1, 4, 256), ("uir", 5, 0, 1, 2, 256)),
        (("cn", 1, 1, 960),),
    ),
}
MOBILENETV4_STEM = 32
MOBILENETV4_HEAD = 1280  # not scaled with the width multiplier


class EdgeResidual(nn.Module):
    """Fused inverted bottleneck: full kxk expansion conv -> BN -> act -> 1x1 projection -> BN."""

    def __init__(self, in_ch: int, kernel: int, stride: int, expansion: float, out_ch: int,
                 act: ActLayer = nn.ReLU) -> None:
        super().__init__()
        mid_ch = make_divisible(in_ch * expansion)
        self.conv_exp = nn.Conv2d(in_ch, mid_ch, kernel, stride, padding=(kernel - 1) // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.act1 = act()
        self.conv_pwl = nn.Conv2d(mid_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.has_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pwl(self.act1(self.bn1(self.conv_exp(x)))))
        return out + x if self.has_residual else out


class UniversalInvertedResidual(nn.Module):
    """[depthwise kxk -> BN] -> 1x1 expansion -> [depthwise kxk -> BN -> act] -> 1x1 projection.

    The stride goes to the middle depthwise conv when there is one, else to the first.
    """

    def __init__(self, in_ch: int, start_kernel: int, mid_kernel: int, stride: int, expansion: float, out_ch: int,
                 act: ActLayer = nn.ReLU) -> None:
        super().__init__()
        if stride > 1 and not (start_kernel or mid_kernel):
            raise ValueError("a strided UIB block needs a depthwise conv")
        mid_ch = make_divisible(in_ch * expansion)
        start_stride = 1 if mid_kernel else stride
        self.dw_start = (ConvBnAct(in_ch, in_ch, start_kernel, start_stride, groups=in_ch, act=None)
                         if start_kernel else nn.Identity())
        self.pw_exp = ConvBnAct(in_ch, mid_ch, 1, act=act)
        self.dw_mid = (ConvBnAct(mid_ch, mid_ch, mid_kernel, stride, groups=mid_ch, act=act)
                       if mid_kernel else nn.Identity())
        self.pw_proj = ConvBnAct(mid_ch, out_ch, 1, act=None)
        self.has_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x))))
        return out + x if self.has_residual else out


def _conv_block(in_ch: int, kernel: int, stride: int, out_ch: int, act: ActLayer = nn.ReLU) -> nn.Module:
    return ConvBnActBlock(in_ch, out_ch, kernel, stride, act=act)


BLOCKS = {"cn": _conv_block, "er": EdgeResidual, "uir": UniversalInvertedResidual}


class MobileNetV4(MobileNetBase):
    # timm's names are this model's own, so timm checkpoints load as layout "edgecls".
    checkpoint_layouts: dict = {}

    def __init__(self, variant: str = "conv_small", width: float = 1.0, num_classes: int = 1000,
                 dropout: float = 0.0) -> None:
        super().__init__()
        width = check_width(width)
        # Narrower than 1.0 the stem keeps its 32 channels (timm's rule).
        stem_ch = scaled_channels(MOBILENETV4_STEM, width) if width >= 1.0 else MOBILENETV4_STEM
        self.init_stem(stem_ch, nn.ReLU)

        def block(in_ch: int, row: tuple) -> tuple[nn.Module, int]:
            kind, *args, out = row
            out_ch = scaled_channels(out, width)
            return BLOCKS[kind](in_ch, *args, out_ch), out_ch

        in_ch = self.init_blocks(stem_ch, MOBILENETV4_CONFIGS[variant], block)
        # Pool first, then a 1x1 conv with BN + ReLU as the head (BN over 1x1 maps, as timm's norm_head).
        self.init_head(in_ch, MOBILENETV4_HEAD, num_classes, dropout, nn.ReLU, norm="norm_head", pool_first=True)


@register_model(resolution=224, references=("timm:mobilenetv4_conv_small",), top1=73.76, paper_madds=200,
                crop_pct=0.875, interpolation="bicubic")
def mobilenetv4_conv_small(num_classes: int = 1000, **kwargs) -> MobileNetV4:
    return MobileNetV4("conv_small", num_classes=num_classes, **kwargs)


@register_model(resolution=256, references=("timm:mobilenetv4_conv_medium",), top1=79.93, paper_madds=1000,
                crop_pct=0.95, interpolation="bicubic")
def mobilenetv4_conv_medium(num_classes: int = 1000, **kwargs) -> MobileNetV4:
    return MobileNetV4("conv_medium", num_classes=num_classes, **kwargs)
