"""Swin Transformer (Liu et al., 2021): attention inside non-overlapping windows, every second
block on windows shifted by half a window, with a learned relative position bias; 2x2 patch
merging between stages.

Module names are timm's, so timm checkpoints load as they are; torchvision's swin_t layout loads
through a converter (its relative_position_index buffers are dropped: they are a function of
the window size, rebuilt here).

Written for export: the model is built for one input size, so the shifted windows' attention
masks are precomputed for it (non-persistent buffers, not in the state dict) and the relative
position index too; the shift is torch.roll; windows are cut with 4-D reshapes and permutes (no
6-D transposes, no unfold); patch merging uses strided slices; attention is matmul + softmax.
Window sizes follow the reference rule: a stage map no larger than the window is one window,
unshifted. Input sides must be multiples of 32 x window so that every stage is tiled by windows.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecls.errors import InvalidArgumentError
from edgecls.models.layers import Mlp, attention, merge_heads, split_heads
from edgecls.models.registry import register_model
from edgecls.weights import StateDict, rename_layout

# Per variant: embedding width, blocks per stage, heads per stage, window, patch.
SWIN_CONFIGS = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), window=7, patch=4),
}
MLP_RATIO = 4
MASKED = -100.0  # the reference's additive mask value for pairs from different shifted regions


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * windows, window * window, C], windows and their pixels row-major."""
    b, h, w, c = x.shape
    x = x.reshape(b * (h // window), window, w // window, window * c).permute(0, 2, 1, 3)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of window_partition: -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.reshape(-1, w // window, window, window * c).permute(0, 2, 1, 3)
    return x.reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """For each (query, key) pixel pair of a window, its row in the (2w-1)^2 bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return (rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).flatten()


def shifted_window_mask(size: int, window: int, shift: int) -> torch.Tensor:
    """[windows, N, N] additive mask: after the cyclic shift, pixels that were not neighbours
    (different regions of the shifted map) must not attend to each other."""
    regions = torch.zeros(1, size, size, 1)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            regions[:, rows, cols, :] = label
            label += 1
    windows = window_partition(regions, window).squeeze(-1)  # [windows, N]
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.where(diff != 0, torch.full_like(diff, MASKED), torch.zeros_like(diff))


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n = x.shape[1]
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, -1))
        bias = self.relative_position_bias_table[self.relative_position_index]  # [N * N, heads]
        bias = bias.transpose(0, 1).reshape(self.heads, n, n)
        if mask is not None:
            # Windows are batch-major: [B * windows, heads, N, N] viewed as [B, windows, heads, N * N]
            # takes the per-window mask by broadcasting (4-D, unlike the reference's 5-D view).
            windows = mask.shape[0]
            bias = bias.reshape(1, 1, self.heads, n * n) + mask.reshape(1, windows, 1, n * n)
            q = q.reshape(-1, windows * self.heads, n, q.shape[-1])
            k = k.reshape(-1, windows * self.heads, n, k.shape[-1])
            v = v.reshape(-1, windows * self.heads, n, v.shape[-1])
            bias = bias.reshape(1, windows * self.heads, n, n)
            out = attention(q, k, v, self.scale, bias).reshape(-1, self.heads, n, v.shape[-1])
        else:
            out = attention(q, k, v, self.scale, bias)
        return self.proj(merge_heads(out))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, size: int, window: int, shift: int) -> None:
        super().__init__()
        if size <= window:  # one window covers the map: nothing to shift
            window, shift = size, 0
        if size % window:
            raise InvalidArgumentError(f"a {size}x{size} stage map is not tiled by {window}x{window} windows")
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, MLP_RATIO * dim)
        mask = shifted_window_mask(size, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = window_reverse(self.attn(window_partition(y, self.window), self.attn_mask), self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (order: (0,0), (1,0), (0,1), (1,1) as (row, col)), LayerNorm,
    linear to twice the width."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, size: int, window: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = PatchMerging(dim // 2) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[SwinBlock(dim, heads, size, window, 0 if i % 2 == 0 else window // 2)
                                      for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # NHWC from here on


class ClassifierHead(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((1, 2)))


def _torchvision_layout(depths: tuple[int, ...]):
    rules = [(r"features\.0\.0\.(.+)", r"patch_embed.proj.\1"), (r"features\.0\.2\.(.+)", r"patch_embed.norm.\1"),
             (r"head\.(weight|bias)", r"head.fc.\1")]
    for i in range(len(depths)):
        src = rf"features\.{2 * i + 1}\.(\d+)"
        rules += [(rf"{src}\.mlp\.0\.(.+)", rf"layers.{i}.blocks.\1.mlp.fc1.\2"),
                  (rf"{src}\.mlp\.3\.(.+)", rf"layers.{i}.blocks.\1.mlp.fc2.\2"),
                  (rf"{src}\.(.+)", rf"layers.{i}.blocks.\1.\2")]
        if i:
            rules.append((rf"features\.{2 * i}\.(.+)", rf"layers.{i}.downsample.\1"))
    rename = rename_layout(rules)

    def convert(state: StateDict) -> dict:
        return {k: v for k, v in rename(state).items() if not k.endswith("relative_position_index")}

    return convert


class SwinTransformer(nn.Module):
    def __init__(self, embed_dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window: int, patch: int,
                 img_size: int = 224, num_classes: int = 1000) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(patch, embed_dim)
        size, dim, stages = img_size // patch, embed_dim, []
        for i, (depth, n_heads) in enumerate(zip(depths, heads)):
            if i:
                size, dim = size // 2, dim * 2
            stages.append(SwinStage(dim, depth, n_heads, size, window, downsample=i > 0))
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dim)
        self.head = ClassifierHead(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise InvalidArgumentError(
                f"this Swin was built for {self.img_size}x{self.img_size} input, got {x.shape[-2]}x{x.shape[-1]}: "
                "create it with resolution=<input side>"
            )
        return self.head(self.norm(self.layers(self.patch_embed(x))))


class SwinTiny(SwinTransformer):
    checkpoint_layouts = {"torchvision": _torchvision_layout(SWIN_CONFIGS["tiny"]["depths"])}


# The paper's Table 1: Swin-T, ImageNet-1k, 224, 4.5 GFLOPs (multiply-adds), 81.2 %.
@register_model(resolution=224, crop_pct=0.9, interpolation="bicubic",
                references=("timm:swin_tiny_patch4_window7_224", "torchvision:swin_t"), top1=81.2, paper_madds=4500,
                resolution_multiple=224, min_resolution=224, sized_at_build=True)
def swin_tiny_patch4_window7_224(num_classes: int = 1000, img_size: int = 224) -> SwinTransformer:
    return SwinTiny(**SWIN_CONFIGS["tiny"], img_size=img_size, num_classes=num_classes)
