"""MLP-Mixer (Tolstikhin et al., 2021): patches, then blocks that alternate an MLP across the
patches (token mixing, per channel) with an MLP across the channels (per patch), pre-norm and
residual; mean over the patches into a linear head.

Module names are timm's, so timm checkpoints load as they are. The token-mixing MLP's weights
are sized by the number of patches, so a Mixer runs at its native resolution only.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecls.models.layers import Mlp
from edgecls.models.registry import INCEPTION_MEAN, INCEPTION_STD, register_model
from edgecls.models.vit import PatchEmbed

# Per size: (width, depth); token / channel MLP widths are these ratios of the width (timm's rule).
MIXER_SIZES = {"S": (512, 8), "B": (768, 12)}
TOKEN_MLP_RATIO, CHANNEL_MLP_RATIO = 0.5, 4.0
LN_EPS = 1e-6
RESOLUTION = 224


class MixerBlock(nn.Module):
    def __init__(self, dim: int, num_patches: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp_tokens = Mlp(num_patches, int(TOKEN_MLP_RATIO * dim))
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp_channels = Mlp(dim, int(CHANNEL_MLP_RATIO * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp_channels(self.norm2(x))


class MlpMixer(nn.Module):
    def __init__(self, width: int, depth: int, patch: int, img_size: int = RESOLUTION, num_classes: int = 1000) -> None:
        super().__init__()
        num_patches = (img_size // patch) ** 2
        self.stem = PatchEmbed(patch, width)
        self.blocks = nn.Sequential(*[MixerBlock(width, num_patches) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=LN_EPS)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.stem(x)))
        return self.head(x.mean(1))


def _meta(ref: str, top1: float | None, paper_gflops: float | None = None) -> dict:
    return dict(resolution=RESOLUTION, mean=INCEPTION_MEAN, std=INCEPTION_STD, crop_pct=0.875,
                interpolation="bicubic", references=(ref,), top1=top1,
                paper_madds=paper_gflops * 1000 / 2 if paper_gflops else None,
                min_resolution=RESOLUTION, max_resolution=RESOLUTION)


# timm has no ImageNet weights for the S sizes; B/16: timm's card for Google's ImageNet-21k
# pre-trained, 1k fine-tuned weights.
@register_model(**_meta("timm:mixer_s32_224", None))
def mixer_s32_224(num_classes: int = 1000) -> MlpMixer:
    return MlpMixer(*MIXER_SIZES["S"], patch=32, num_classes=num_classes)


@register_model(**_meta("timm:mixer_s16_224", None))
def mixer_s16_224(num_classes: int = 1000) -> MlpMixer:
    return MlpMixer(*MIXER_SIZES["S"], patch=16, num_classes=num_classes)


@register_model(**_meta("timm:mixer_b16_224", 76.6))
def mixer_b16_224(num_classes: int = 1000) -> MlpMixer:
    return MlpMixer(*MIXER_SIZES["B"], patch=16, num_classes=num_classes)
