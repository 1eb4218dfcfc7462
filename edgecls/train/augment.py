"""Training-time augmentation on batches of [0, 1] images, through kornia.

Why kornia: it is pure PyTorch (augments whole batches as tensors, reproducible from torch's
seed, no OpenCV), well kept (Linux Foundation AI project, monthly releases) and installs beside
torch 2.13.0 without torchvision; albumentations would bring OpenCV and work per image in numpy.
"""

from __future__ import annotations

AUGMENTS = ("none", "light", "strong")


def make_augment(kind: str, resolution: int):
    """A module mapping (B, 3, R, R) in [0, 1] to augmented images of the same shape, or None."""
    if kind == "none":
        return None
    try:
        import kornia.augmentation as K
    except ImportError:
        from edgecls.errors import MissingDependencyError

        raise MissingDependencyError("--augment light|strong needs kornia: pip install 'edgecls[train]'") from None
    import torch

    size = (resolution, resolution)
    if kind == "light":
        ops = [
            K.RandomResizedCrop(size, scale=(0.75, 1.0), ratio=(0.9, 1.1)),
            K.RandomHorizontalFlip(),
            K.ColorJitter(0.2, 0.2, 0.2, 0.0, p=0.5),
        ]
    elif kind == "strong":
        ops = [
            K.RandomResizedCrop(size, scale=(0.5, 1.0)),
            K.RandomHorizontalFlip(),
            K.RandomAffine(degrees=15, translate=(0.1, 0.1), p=0.5),
            K.ColorJitter(0.4, 0.4, 0.4, 0.05, p=0.8),
            K.RandomErasing(scale=(0.02, 0.2), p=0.25),
        ]
    else:
        raise ValueError(kind)
    return torch.nn.Sequential(*ops)
