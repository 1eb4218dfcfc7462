"""CvT (Wu et al., 2021): convolutional token embeddings (overlapping strided convs + LayerNorm)
at three scales, and transformer blocks whose queries, keys and values come from depthwise 3x3
conv + BatchNorm projections of the token map (keys and values at stride 2); a class token joins
in the last stage only and is what the head reads.

The reference is Hugging Face transformers' CvtForImageClassification (Microsoft's released
CvT-13 weights are in that layout); its long module names load through a converter onto the
shorter names here. As there, attention scores are scaled by 1/sqrt(embedding width), not of
the head width (the original implementation does so too).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecls.models.layers import Mlp, attention, merge_heads, split_heads
from edgecls.models.registry import register_model
from edgecls.weights import child_rules, rename_layout

# Per stage: (embedding kernel, stride, padding, width, heads, depth, class token).
CVT_CONFIGS = {
    "13": ((7, 4, 2, 64, 1, 1, False), (3, 2, 1, 192, 3, 2, False), (3, 2, 1, 384, 6, 10, True)),
}
MLP_RATIO = 4
QKV_KERNEL, KV_STRIDE = 3, 2


class ConvEmbed(nn.Module):
    def __init__(self, in_ch: int, dim: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, kernel, stride, padding)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w  # [B, H * W, C]


class ConvProjection(nn.Module):
    """Depthwise conv + BatchNorm on the [B, C, H, W] token map, back to [B, N, C] tokens."""

    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, QKV_KERNEL, stride, QKV_KERNEL // 2, groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).flatten(2).transpose(1, 2)


class ConvAttention(nn.Module):
    def __init__(self, dim: int, heads: int, cls_token: bool) -> None:
        super().__init__()
        self.heads, self.cls_token = heads, cls_token
        self.scale = dim**-0.5
        self.conv_q = ConvProjection(dim, 1)
        self.conv_k = ConvProjection(dim, KV_STRIDE)
        self.conv_v = ConvProjection(dim, KV_STRIDE)
        self.proj_q = nn.Linear(dim, dim)
        self.proj_k = nn.Linear(dim, dim)
        self.proj_v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if self.cls_token:
            cls, x = x[:, :1], x[:, 1:]
        b, n, c = x.shape
        grid = x.transpose(1, 2).reshape(b, c, h, w)
        q, k, v = self.conv_q(grid), self.conv_k(grid), self.conv_v(grid)
        if self.cls_token:
            q, k, v = (torch.cat([cls, t], dim=1) for t in (q, k, v))
        q = split_heads(self.proj_q(q), self.heads)
        k = split_heads(self.proj_k(k), self.heads)
        v = split_heads(self.proj_v(v), self.heads)
        return self.proj(merge_heads(attention(q, k, v, self.scale)))


class CvtBlock(nn.Module):
    def __init__(self, dim: int, heads: int, cls_token: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ConvAttention(dim, heads, cls_token)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, MLP_RATIO * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x))


class CvtStage(nn.Module):
    def __init__(self, in_ch: int, kernel: int, stride: int, padding: int, dim: int, heads: int, depth: int,
                 cls_token: bool) -> None:
        super().__init__()
        self.embed = ConvEmbed(in_ch, dim, kernel, stride, padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.blocks = nn.ModuleList([CvtBlock(dim, heads, cls_token) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = x.shape[0]
        x, h, w = self.embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x, h, w)
        cls = None
        if self.cls_token is not None:
            cls, x = x[:, :1], x[:, 1:]
        return x.transpose(1, 2).reshape(b, -1, h, w), cls


_prefix = r"cvt\.encoder\.stages\.(\d+)"
_layer = rf"{_prefix}\.layers\.(\d+)"
_qkv = r"attention\.attention\.convolution_projection_(q|k|v)\w+\.convolution_projection"
_transformers_layout = rename_layout([
    *child_rules(rf"{_prefix}\.embedding\.convolution_embeddings", r"stages.\1.embed",
                 [(r"projection", "proj"), (r"normalization", "norm")]),
    (rf"{_prefix}\.cls_token", r"stages.\1.cls_token"),
    *child_rules(_layer, r"stages.\1.blocks.\2", [
        (rf"{_qkv}\.convolution", r"attn.conv_\3.conv"), (rf"{_qkv}\.normalization", r"attn.conv_\3.bn"),
        (r"attention\.attention\.projection_(q|k|v)\w+", r"attn.proj_\3"), (r"attention\.output\.dense", "attn.proj"),
        (r"intermediate\.dense", "mlp.fc1"), (r"output\.dense", "mlp.fc2"), (r"layernorm_before", "norm1"),
        (r"layernorm_after", "norm2")]),
    (r"layernorm\.(.+)", r"norm.\1"),
    (r"classifier\.(.+)", r"head.\1"),
])


class ConvolutionalVisionTransformer(nn.Module):
    checkpoint_layouts = {"transformers": _transformers_layout}

    def __init__(self, stages: tuple[tuple[int, int, int, int, int, int, bool], ...], num_classes: int = 1000) -> None:
        super().__init__()
        in_ch, modules = 3, []
        for kernel, stride, padding, dim, heads, depth, cls_token in stages:
            modules.append(CvtStage(in_ch, kernel, stride, padding, dim, heads, depth, cls_token))
            in_ch = dim
        self.stages = nn.ModuleList(modules)
        self.norm = nn.LayerNorm(in_ch)
        self.head = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = None
        for stage in self.stages:
            x, cls = stage(x)
        if cls is not None:
            return self.head(self.norm(cls[:, 0]))
        return self.head(self.norm(x.flatten(2).transpose(1, 2)).mean(1))


# The paper's Table 2 / Microsoft's card: CvT-13, ImageNet-1k, 224, 4.5 GFLOPs, 81.6 %.
@register_model(resolution=224, crop_pct=0.875, interpolation="bicubic", references=("transformers:cvt-13",),
                top1=81.6, paper_madds=4500, resolution_multiple=16, min_resolution=32)
def cvt_13(num_classes: int = 1000) -> ConvolutionalVisionTransformer:
    return ConvolutionalVisionTransformer(CVT_CONFIGS["13"], num_classes=num_classes)
