"""ConvNeXt (Liu et al., 2022) and timm's small members (Atto, Femto, Pico, Nano, by Wightman).

A 4x4 stride-4 patchify stem, four stages of blocks (7x7 depthwise conv, LayerNorm, 4x MLP with
GELU, learned per-channel layer scale, residual), LayerNorm + 2x2 stride-2 conv between stages,
pooled LayerNorm + linear head.

Module names are timm's. The small timm members run the MLP as 1x1 convs on NCHW maps
(``conv_mlp``), ConvNeXt-T as linear layers on NHWC, exactly as timm does, so timm checkpoints
load as they are. torchvision's convnext_tiny loads through a converter (its numbered
``features`` and ``block`` children, layer scale shaped [C, 1, 1]).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecls.models.layers import LayerNorm2d, Mlp
from edgecls.models.registry import register_variant
from edgecls.weights import StateDict, rename_layout

# Per variant: (channels per stage, blocks per stage, conv_mlp).
CONVNEXT_CONFIGS = {
    "atto": ((40, 80, 160, 320), (2, 2, 6, 2), True),
    "femto": ((48, 96, 192, 384), (2, 2, 6, 2), True),
    "pico": ((64, 128, 256, 512), (2, 2, 6, 2), True),
    "nano": ((80, 160, 320, 640), (2, 2, 8, 2), True),
    "tiny": ((96, 192, 384, 768), (3, 3, 9, 3), False),
}
MLP_RATIO = 4
LN_EPS = 1e-6


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, conv_mlp: bool) -> None:
        super().__init__()
        self.conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=LN_EPS) if conv_mlp else nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, MLP_RATIO * dim, conv=conv_mlp)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)
        if self.conv_mlp:
            x = self.mlp(self.norm(x)) * self.gamma.reshape(1, -1, 1, 1)
        else:
            x = self.mlp(self.norm(x.permute(0, 2, 3, 1))) * self.gamma
            x = x.permute(0, 3, 1, 2)
        return x + shortcut


class ConvNeXtStage(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, depth: int, conv_mlp: bool, downsample: bool) -> None:
        super().__init__()
        if downsample:
            self.downsample: nn.Module = nn.Sequential(LayerNorm2d(in_ch, eps=LN_EPS), nn.Conv2d(in_ch, out_ch, 2, 2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(out_ch, conv_mlp) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class NormHead(nn.Module):
    """Global average pool, LayerNorm, linear (timm's ``head.norm`` / ``head.fc``)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))


def _torchvision_layout(depths: tuple[int, ...]):
    # features.0 = stem, then stage i at features.{2i+1} and its downsample at features.{2i}.
    rules = [(r"features\.0\.(\d)\.(.+)", r"stem.\1.\2"), (r"classifier\.0\.(.+)", r"head.norm.\1"),
             (r"classifier\.2\.(.+)", r"head.fc.\1")]
    for i in range(len(depths)):
        rules += [
            (rf"features\.{2 * i + 1}\.(\d+)\.layer_scale", rf"stages.{i}.blocks.\1.gamma"),
            (rf"features\.{2 * i + 1}\.(\d+)\.block\.0\.(.+)", rf"stages.{i}.blocks.\1.conv_dw.\2"),
            (rf"features\.{2 * i + 1}\.(\d+)\.block\.2\.(.+)", rf"stages.{i}.blocks.\1.norm.\2"),
            (rf"features\.{2 * i + 1}\.(\d+)\.block\.3\.(.+)", rf"stages.{i}.blocks.\1.mlp.fc1.\2"),
            (rf"features\.{2 * i + 1}\.(\d+)\.block\.5\.(.+)", rf"stages.{i}.blocks.\1.mlp.fc2.\2"),
        ]
        if i:
            rules.append((rf"features\.{2 * i}\.(\d)\.(.+)", rf"stages.{i}.downsample.\1.\2"))
    rename = rename_layout(rules)

    def convert(state: StateDict) -> dict:
        return {k: v.flatten() if k.endswith(".gamma") else v for k, v in rename(state).items()}

    return convert


class ConvNeXt(nn.Module):
    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...], conv_mlp: bool, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=LN_EPS))
        stages = []
        in_ch = dims[0]
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            stages.append(ConvNeXtStage(in_ch, dim, depth, conv_mlp, downsample=i > 0))
            in_ch = dim
        self.stages = nn.Sequential(*stages)
        self.head = NormHead(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


class ConvNeXtTiny(ConvNeXt):
    checkpoint_layouts = {"torchvision": _torchvision_layout(CONVNEXT_CONFIGS["tiny"][1])}


def _register(name: str, model: type[ConvNeXt], top1: float, paper_madds: float | None, crop_pct: float = 0.95) -> None:
    size = name.removeprefix("convnext_")
    refs = (f"timm:{name}",) + (("torchvision:convnext_tiny",) if model is ConvNeXtTiny else ())
    register_variant(name, model, *CONVNEXT_CONFIGS[size], resolution=224, crop_pct=crop_pct, interpolation="bicubic",
                     references=refs, top1=top1, paper_madds=paper_madds, resolution_multiple=32)


# Atto ... Nano: timm's ImageNet-1k weights at 224 (timm's release notes / model cards; trained at
# 224, crop 0.95); their MACs are timm's own count, there is no paper.
TIMM_TOP1 = {"atto": 75.7, "femto": 77.5, "pico": 79.5, "nano": 80.8}
for _size, _top1 in TIMM_TOP1.items():
    _register(f"convnext_{_size}", ConvNeXt, _top1, None)
# The paper's Table 1: ConvNeXt-T, ImageNet-1k, 224, 4.5 GFLOPs, 82.1 % (crop 0.875 there).
_register("convnext_tiny", ConvNeXtTiny, 82.1, 4500, crop_pct=0.875)
