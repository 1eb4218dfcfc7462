"""Vision Transformer (Dosovitskiy et al., 2021), as timm and torchvision implement it.

Non-overlapping patches (a stride-``patch`` conv), a class token, learned position embeddings,
pre-norm transformer blocks, the class token's final LayerNorm into a linear head.

Module names are timm's, so timm checkpoints load as they are; torchvision's vit_b_16 layout
loads through a converter (its fused ``in_proj_weight`` has the same q|k|v order as timm's qkv).

The position embeddings belong to one patch grid, so the model is built for one input size
(``img_size``; create_model(..., resolution=R)). A checkpoint made for another grid is resampled
while loading by timm's rule: bicubic interpolation of the grid part (antialiased when
shrinking), class token kept. The graph then has a constant position table and static shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecls.errors import InvalidArgumentError
from edgecls.models.layers import Mlp, MultiHeadSelfAttention
from edgecls.models.registry import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, register_variant
from edgecls.weights import child_rules, rename_layout

# Width, depth, MLP width, heads of each ViT size, as the ViT size table of Zhai et al. (2022,
# "Scaling Vision Transformers", Table 2) lists them; README's table is generated from these.
VIT_SIZES = {
    "s": (256, 6, 1024, 8),
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "g": (1408, 40, 6144, 16),
    "G": (1664, 48, 8192, 16),
}
# The (size, patch) rows of that table, in its order.
VIT_TABLE = (("s", 28), ("s", 16), ("S", 32), ("Ti", 16), ("B", 32), ("S", 16), ("B", 28), ("B", 16),
             ("L", 16), ("g", 14), ("G", 14))
LN_EPS = 1e-6


def resample_pos_embed(pos_embed: torch.Tensor, grid: int, prefix_tokens: int = 1) -> torch.Tensor:
    """[1, prefix + g*g, C] -> [1, prefix + grid*grid, C]: timm's resample_abs_pos_embed rule."""
    prefix, table = pos_embed[:, :prefix_tokens], pos_embed[:, prefix_tokens:]
    old = int(round(table.shape[1] ** 0.5))
    if old * old != table.shape[1]:
        raise InvalidArgumentError(f"position embedding of {table.shape[1]} patches is not a square grid")
    dim = table.shape[-1]
    table = table.float().reshape(1, old, old, dim).permute(0, 3, 1, 2)
    table = F.interpolate(table, size=(grid, grid), mode="bicubic", antialias=True, align_corners=False)
    table = table.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(pos_embed.dtype)
    return torch.cat([prefix, table], dim=1)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, C], patches row-major


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


_torchvision_layout = rename_layout([
    (r"class_token", "cls_token"),
    (r"conv_proj\.(.+)", r"patch_embed.proj.\1"),
    (r"encoder\.pos_embedding", "pos_embed"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_(weight|bias)", r"blocks.\1.attn.qkv.\2"),
    *child_rules(r"encoder\.layers\.encoder_layer_(\d+)", r"blocks.\1", [
        (r"ln_1", "norm1"), (r"ln_2", "norm2"), (r"self_attention\.out_proj", "attn.proj"), (r"mlp\.0", "mlp.fc1"),
        (r"mlp\.3", "mlp.fc2")]),
    (r"encoder\.ln\.(.+)", r"norm.\1"),
    (r"heads\.head\.(.+)", r"head.\1"),
])


class VisionTransformer(nn.Module):
    checkpoint_layouts = {"torchvision": _torchvision_layout}

    def __init__(self, width: int, depth: int, mlp: int, heads: int, patch: int, img_size: int = 224,
                 num_classes: int = 1000) -> None:
        super().__init__()
        if img_size % patch:
            raise InvalidArgumentError(f"image size {img_size} is not a multiple of the patch size {patch}")
        self.patch, self.img_size, self.grid = patch, img_size, img_size // patch
        self.patch_embed = PatchEmbed(patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid**2, width) * 0.02)
        self.blocks = nn.Sequential(*[Block(width, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=LN_EPS)
        self.head = nn.Linear(width, num_classes)

    def adapt_checkpoint(self, state: dict) -> dict:
        pos = state.get("pos_embed")
        if isinstance(pos, torch.Tensor) and pos.ndim == 3 and pos.shape[1] != self.pos_embed.shape[1]:
            state = {**state, "pos_embed": resample_pos_embed(pos, self.grid)}
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise InvalidArgumentError(
                f"this ViT was built for {self.img_size}x{self.img_size} input, got {x.shape[-2]}x{x.shape[-1]}: "
                "create it with resolution=<input side>"
            )
        x = self.patch_embed(x)
        # expand_as, not expand(x.shape[0], ...): a traced size feeds aten::Int, which coremltools 9
        # cannot convert ("only 0-dimensional arrays can be converted to Python scalars").
        x = torch.cat([self.cls_token.expand_as(x[:, :1]), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit(size: str, patch: int, img_size: int = 224, num_classes: int = 1000) -> VisionTransformer:
    """A ViT of one of VIT_SIZES (also the unregistered ones, for the size table)."""
    return VisionTransformer(*VIT_SIZES[size], patch=patch, img_size=img_size, num_classes=num_classes)


def _register(name: str, size: str, patch: int, top1: float, paper_gflops: float, timm_augreg: bool = True) -> None:
    # timm's AugReg weights (Steiner et al., 2022: ImageNet-21k, fine-tuned on 1k) take [-1, 1]
    # inputs; torchvision's own weights ImageNet statistics and bilinear resizing.
    preprocessing = (dict(mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.9, interpolation="bicubic") if timm_augreg
                     else dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875, interpolation="bilinear"))
    refs = (f"timm:{name}",) if timm_augreg else ("torchvision:vit_b_16",)
    register_variant(name, vit, size, patch, resolution=224, references=refs, top1=top1,
                     paper_madds=paper_gflops * 1000 / 2, resolution_multiple=patch, min_resolution=patch,
                     sized_at_build=True, **preprocessing)


# top-1: timm's model cards for the AugReg weights, torchvision's card for vit_b_16; paper MAdds
# are half the GFLOPs of Zhai et al.'s Table 2.
_register("vit_tiny_patch16_224", "Ti", 16, 75.5, 2.5)
_register("vit_small_patch16_224", "S", 16, 81.4, 9.2)
_register("vit_small_patch32_224", "S", 32, 76.0, 2.3)
_register("vit_base_patch32_224", "B", 32, 80.7, 8.7)
_register("vit_base_patch16_224", "B", 16, 81.1, 35.1, timm_augreg=False)
