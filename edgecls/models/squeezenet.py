"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016).

Module names follow torchvision's, so its checkpoints load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecls.models.registry import register_model

# Per version: stem (out channels, kernel), then the feature sequence: "M" is a 3x3/2 max-pool,
# a tuple is a Fire module (squeeze, expand1x1, expand3x3).
SQUEEZENET_CONFIGS = {
    "1_0": ((96, 7), ["M", (16, 64, 64), (16, 64, 64), (32, 128, 128), "M",
                      (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256), "M", (64, 256, 256)]),
    "1_1": ((64, 3), ["M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M",
                      (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]),
}


class Fire(nn.Module):
    def __init__(self, in_ch: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_ch, squeeze, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet(nn.Module):
    def __init__(self, version: str = "1_1", num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        (stem_ch, stem_k), layout = SQUEEZENET_CONFIGS[version]
        layers: list[nn.Module] = [nn.Conv2d(3, stem_ch, stem_k, stride=2), nn.ReLU()]
        ch = stem_ch
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            else:
                layers.append(Fire(ch, *item))
                ch = item[1] + item[2]
        self.features = nn.Sequential(*layers)
        # The classifier is a 1x1 conv + ReLU, then a global pool: index 1 holds the weights,
        # as in torchvision's checkpoints.
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Conv2d(ch, num_classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


@register_model(resolution=224, references=("torchvision:squeezenet1_0",), top1=58.09, paper_madds=None,
                crop_pct=0.875, interpolation="bilinear")
def squeezenet1_0(num_classes: int = 1000, **kwargs) -> SqueezeNet:
    return SqueezeNet("1_0", num_classes=num_classes, **kwargs)


@register_model(resolution=224, references=("torchvision:squeezenet1_1",), top1=58.18, paper_madds=None,
                crop_pct=0.875, interpolation="bilinear")
def squeezenet1_1(num_classes: int = 1000, **kwargs) -> SqueezeNet:
    return SqueezeNet("1_1", num_classes=num_classes, **kwargs)
