"""DenseNet (Huang et al., 2017): every layer of a dense block sees the concatenation of all
earlier feature maps of the block; transitions halve channels and resolution between blocks.

Module names are torchvision's, which timm kept for its DenseNet, so checkpoints of both load as
they are. The concatenations are plain torch.cat of the running feature list (no memory-efficient
checkpointing, which only matters for training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecls.models.registry import register_model

# Per variant: (growth rate, layers per dense block, stem channels); bottleneck width = BN_SIZE * growth.
DENSENET_CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
}
BN_SIZE = 4


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv to the bottleneck, BN-ReLU-3x3 conv to ``growth`` new channels."""

    def __init__(self, in_ch: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_ch: int, growth: int, bn_size: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_ch + i * growth, growth, bn_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    def __init__(self, growth: int, block_layers: tuple[int, ...], stem: int, bn_size: int = BN_SIZE,
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, stem, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(stem))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        ch = stem
        for i, num_layers in enumerate(block_layers):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(num_layers, ch, growth, bn_size))
            ch += num_layers * growth
            if i != len(block_layers) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(ch, ch // 2))
                ch //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(ch))
        self.classifier = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x))
        return self.classifier(x.mean((2, 3)))


# torchvision's weights: 74.43 % top-1 (its model card), bilinear resize. The paper gives no MAC
# table for DenseNet-121 (only a plot).
@register_model(resolution=224, crop_pct=0.875, interpolation="bilinear",
                references=("torchvision:densenet121", "timm:densenet121"), top1=74.43,
                resolution_multiple=32)
def densenet121(num_classes: int = 1000) -> DenseNet:
    return DenseNet(*DENSENET_CONFIGS["densenet121"], num_classes=num_classes)
