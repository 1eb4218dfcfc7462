"""MobileViT v1 (Mehta & Rastegari, 2021) and MobileViT v2 (Mehta & Rastegari, 2022).

Both are MobileNetV2-style inverted residual stages with, in the last three stages, a block that
unfolds the feature map into 2x2 patches and mixes pixels across patches with a transformer:
multi-head attention in v1, "separable" linear attention (a softmax-weighted context vector, no
token-by-token matrix) in v2.

Module names follow timm's, so timm checkpoints load as they are (apart from the classifier).
Written for export: patches are cut with 4-D reshapes/permutes (no unfold/fold and no 6-D
transposes, which TFLite handles poorly), attention is an explicit matmul + softmax (counted in
MACs, converted by every toolchain), and v2's one-group GroupNorm is spelled out as mean/variance
arithmetic. Instead of resizing feature maps that the patch grid does not tile (what the reference
does, with a data-dependent branch), inputs must be a multiple of 64 pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecls.errors import InvalidArgumentError
from edgecls.models.layers import ClassifierHead, ConvBnAct, Mlp, MultiHeadSelfAttention, check_width, make_divisible
from edgecls.models.registry import register_variant
from edgecls.weights import rename_layout

PATCH_SIZE = 2
# Five stride-2 steps take the input to 1/32; 2x2 patches must tile that last map too.
RESOLUTION_MULTIPLE = 32 * PATCH_SIZE

# Per stage: (out channels, stride, inverted residual blocks, expansion, transformer depth,
# transformer width). Depth 0 means a plain inverted residual stage; otherwise one MobileViT
# block follows the inverted residuals.
MOBILEVIT_V1_CONFIGS = {
    "xxs": dict(stem=16, num_features=320, stages=(
        (16, 1, 1, 2.0, 0, 0), (24, 2, 3, 2.0, 0, 0),
        (48, 2, 1, 2.0, 2, 64), (64, 2, 1, 2.0, 4, 80), (80, 2, 1, 2.0, 3, 96))),
    "xs": dict(stem=16, num_features=384, stages=(
        (32, 1, 1, 4.0, 0, 0), (48, 2, 3, 4.0, 0, 0),
        (64, 2, 1, 4.0, 2, 96), (80, 2, 1, 4.0, 4, 120), (96, 2, 1, 4.0, 3, 144))),
    "s": dict(stem=16, num_features=640, stages=(
        (32, 1, 1, 4.0, 0, 0), (64, 2, 3, 4.0, 0, 0),
        (96, 2, 1, 4.0, 2, 144), (128, 2, 1, 4.0, 4, 192), (160, 2, 1, 4.0, 3, 240))),
}

# MobileViT v2 at width 1.0, same columns; the transformer width is half the stage's channels.
# Other widths scale the stem and stage channels by int(c * width) (the reference rule, not
# make_divisible), and there is no 1x1 conv before the classifier.
MOBILEVIT_V2_STEM = 32
MOBILEVIT_V2_STAGES = (
    (64, 1, 1, 2.0, 0), (128, 2, 2, 2.0, 0), (256, 2, 1, 2.0, 2), (384, 2, 1, 2.0, 4), (512, 2, 1, 2.0, 3),
)
MOBILEVIT_V2_TRANSFORMER_RATIO = 0.5

MOBILEVIT_MEAN = (0.0, 0.0, 0.0)  # the reference weights take [0, 1] RGB as it is
MOBILEVIT_STD = (1.0, 1.0, 1.0)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear project, residual when the shape is kept.

    The expansion applies to the input channels; a stride or channel change has no shortcut at
    all (the reference uses no projection shortcut).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: float) -> None:
        super().__init__()
        mid = make_divisible(in_ch * expansion)
        self.conv1_1x1 = ConvBnAct(in_ch, mid, 1, act=nn.SiLU)
        self.conv2_kxk = ConvBnAct(mid, mid, 3, stride, groups=mid, act=nn.SiLU)
        self.conv3_1x1 = ConvBnAct(mid, out_ch, 1, act=None)
        self.has_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return out + x if self.has_residual else out


def check_patch_grid(x: torch.Tensor, patch: int) -> tuple[int, int]:
    """The patch grid (rows, cols) of a feature map; the sides must be multiples of ``patch``."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % patch or w % patch:
        raise InvalidArgumentError(
            f"feature map {h}x{w} is not tiled by {patch}x{patch} patches: "
            f"use input sides that are multiples of {RESOLUTION_MULTIPLE}"
        )
    return h // patch, w // patch


def map_to_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, P, N]: P pixels per patch (row-major), N patches (row-major)."""
    b, c, h, w = x.shape
    rows, cols = h // patch, w // patch
    x = x.reshape(b * c * rows, patch, cols, patch).permute(0, 1, 3, 2)  # [BCr, ph, pw, cols]
    x = x.reshape(b * c, rows, patch * patch, cols).permute(0, 2, 1, 3)  # [BC, P, rows, cols]
    return x.reshape(b, c, patch * patch, rows * cols)


def patches_to_map(x: torch.Tensor, patch: int, rows: int, cols: int) -> torch.Tensor:
    """Inverse of map_to_patches: [B, C, P, N] -> [B, C, rows * patch, cols * patch]."""
    b, c = x.shape[0], x.shape[1]
    x = x.reshape(b * c, patch * patch, rows, cols).permute(0, 2, 1, 3)  # [BC, rows, P, cols]
    x = x.reshape(b * c * rows, patch, patch, cols).permute(0, 1, 3, 2)  # [BCr, ph, cols, pw]
    return x.reshape(b, c, rows * patch, cols * patch)


# ---- MobileViT v1: multi-head attention among patches, per pixel position -------------------------


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer on [B, N, C] tokens."""

    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=nn.SiLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTBlock(nn.Module):
    """v1: local 3x3 conv, 1x1 to the transformer width, transformers over patches, project back,
    then fuse with the block's input by a 3x3 conv over both."""

    def __init__(self, channels: int, transformer_dim: int, depth: int, patch: int = PATCH_SIZE) -> None:
        super().__init__()
        self.patch = patch
        self.conv_kxk = ConvBnAct(channels, channels, 3, act=nn.SiLU)
        self.conv_1x1 = nn.Conv2d(channels, transformer_dim, 1, bias=False)
        self.transformer = nn.Sequential(*[TransformerBlock(transformer_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(transformer_dim)
        self.conv_proj = ConvBnAct(transformer_dim, channels, 1, act=nn.SiLU)
        self.conv_fusion = ConvBnAct(2 * channels, channels, 3, act=nn.SiLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = check_patch_grid(x, self.patch)
        y = self.conv_1x1(self.conv_kxk(x))
        b, c = y.shape[0], y.shape[1]
        area = self.patch * self.patch
        # Tokens are the patches; each pixel position inside a patch is its own sequence.
        tokens = map_to_patches(y, self.patch).permute(0, 2, 3, 1).reshape(b * area, rows * cols, c)
        tokens = self.norm(self.transformer(tokens))
        y = tokens.reshape(b, area, rows * cols, c).permute(0, 3, 1, 2)
        y = self.conv_proj(patches_to_map(y, self.patch, rows, cols))
        return self.conv_fusion(torch.cat((x, y), dim=1))


# ---- MobileViT v2: separable (linear) attention on [B, C, P, N] ------------------------------------


class GroupNorm1(nn.Module):
    """GroupNorm with one group (statistics over all of C, P, N per sample), per-channel affine.

    Same parameters and result as nn.GroupNorm(1, C), written as plain reductions so converters
    without a GroupNorm kernel (TFLite int8) get ops they know.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(dim=(1, 2, 3), keepdim=True)
        x = centered * torch.rsqrt(var + self.eps)
        return x * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)


class LinearSelfAttention(nn.Module):
    """Separable self-attention: one softmax score per patch, a context vector from the keys
    weighted by it, broadcast onto ReLU(values). Linear in the number of patches."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1)
        self.out_proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv_proj(x).split([1, self.dim, self.dim], dim=1)
        scores = torch.softmax(query, dim=-1)  # over the patches N
        context = (key * scores).sum(dim=-1, keepdim=True)
        return self.out_proj(F.relu(value) * context)


class LinearTransformerBlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.attn = LinearSelfAttention(dim)
        self.norm2 = GroupNorm1(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=nn.SiLU, conv=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTV2Block(nn.Module):
    """v2: depthwise 3x3, 1x1 to the transformer width, linear transformers over patches, 1x1
    projection (no activation, no fusion with the input)."""

    def __init__(self, channels: int, transformer_dim: int, depth: int, patch: int = PATCH_SIZE) -> None:
        super().__init__()
        self.patch = patch
        self.conv_kxk = ConvBnAct(channels, channels, 3, groups=channels, act=nn.SiLU)
        self.conv_1x1 = nn.Conv2d(channels, transformer_dim, 1, bias=False)
        self.transformer = nn.Sequential(*[LinearTransformerBlock(transformer_dim) for _ in range(depth)])
        self.norm = GroupNorm1(transformer_dim)
        self.conv_proj = ConvBnAct(transformer_dim, channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = check_patch_grid(x, self.patch)
        y = self.conv_1x1(self.conv_kxk(x))
        y = self.norm(self.transformer(map_to_patches(y, self.patch)))
        return self.conv_proj(patches_to_map(y, self.patch, rows, cols))


# ---- the network ------------------------------------------------------------------------------------

# timm names everything as we do except the classifier.
_timm_layout = rename_layout([(r"head\.fc\.(weight|bias)", r"head.classifier.\1")])


class MobileViT(nn.Module):
    """Stem, five stages, optional 1x1 conv to ``num_features`` (v1), pooled linear classifier.

    ``stages`` rows: (out channels, stride, inverted residual blocks, expansion, transformer
    depth, transformer width); ``version`` picks the transformer block (1 or 2).
    """

    checkpoint_layouts = {"timm": _timm_layout}

    def __init__(
        self,
        stem_channels: int,
        stages: tuple[tuple[int, int, int, float, int, int], ...],
        version: int,
        num_features: int = 0,
        num_classes: int = 1000,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        global_block = {1: MobileViTBlock, 2: MobileViTV2Block}[version]
        self.stem = ConvBnAct(3, stem_channels, 3, stride=2, act=nn.SiLU)
        ch = stem_channels
        stage_modules = []
        for out_ch, stride, ir_blocks, expansion, depth, transformer_dim in stages:
            blocks: list[nn.Module] = []
            for i in range(ir_blocks):
                blocks.append(InvertedResidual(ch, out_ch, stride if i == 0 else 1, expansion))
                ch = out_ch
            if depth:
                blocks.append(global_block(ch, transformer_dim, depth))
            stage_modules.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stage_modules)
        if num_features:
            self.final_conv: nn.Module = ConvBnAct(ch, num_features, 1, act=nn.SiLU)
            ch = num_features
        else:
            self.final_conv = nn.Identity()
        self.head = ClassifierHead(ch, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_conv(self.stages(self.stem(x))))


def _mobilevit_v1(size: str, num_classes: int, **kwargs) -> MobileViT:
    cfg = MOBILEVIT_V1_CONFIGS[size]
    return MobileViT(cfg["stem"], cfg["stages"], version=1, num_features=cfg["num_features"],
                     num_classes=num_classes, **kwargs)


def _mobilevit_v2(width: float, num_classes: int, **kwargs) -> MobileViT:
    width = check_width(width)
    if int(MOBILEVIT_V2_STEM * width) < 1:
        raise InvalidArgumentError(
            f"width multiplier {width} leaves MobileViT v2 without stem channels: use at least {1 / MOBILEVIT_V2_STEM}"
        )
    stages = []
    for channels, stride, ir_blocks, expansion, depth in MOBILEVIT_V2_STAGES:
        channels = int(channels * width)
        transformer_dim = make_divisible(channels * MOBILEVIT_V2_TRANSFORMER_RATIO)
        stages.append((channels, stride, ir_blocks, expansion, depth, transformer_dim))
    return MobileViT(int(MOBILEVIT_V2_STEM * width), tuple(stages), version=2, num_classes=num_classes, **kwargs)


def _meta(ref: str, top1: float, paper_madds: float | None, crop_pct: float) -> dict:
    return dict(resolution=256, mean=MOBILEVIT_MEAN, std=MOBILEVIT_STD, crop_pct=crop_pct, interpolation="bicubic",
                references=(f"timm:{ref}",), top1=top1, paper_madds=paper_madds,
                resolution_multiple=RESOLUTION_MULTIPLE, min_resolution=RESOLUTION_MULTIPLE)


# ImageNet top-1 (%) and paper MAdds (millions) per v2 width multiplier: Apple's weights evaluated
# at 256 after resizing to 288 (crop 0.888).
MOBILEVIT_V2_WIDTHS = {0.5: (70.18, 480), 0.75: (75.56, 1000), 1.0: (78.09, 1800), 1.25: (79.65, 2800),
                       1.5: (80.38, 4000), 1.75: (80.86, 5500), 2.0: (81.17, 7200)}
# ImageNet top-1 (%) per v1 size, evaluated at crop 0.9.
MOBILEVIT_V1_TOP1 = {"xxs": 68.9, "xs": 74.6, "s": 78.3}

for _width, (_top1, _madds) in MOBILEVIT_V2_WIDTHS.items():
    _name = f"mobilevitv2_{round(_width * 100):03d}"
    register_variant(_name, _mobilevit_v2, _width, **_meta(_name, _top1, _madds, 0.888))
for _size, _top1 in MOBILEVIT_V1_TOP1.items():
    register_variant(f"mobilevit_{_size}", _mobilevit_v1, _size, **_meta(f"mobilevit_{_size}", _top1, None, 0.9))
