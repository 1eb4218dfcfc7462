"""The classifier head of any edgecls model: find it, resize it, read the features it sees.

Training a model on a user's classes replaces the module that produces the logits (a Linear in
most families, SqueezeNet's 1x1 conv) and optionally puts a hidden layer in front of it. The
export pipeline, evaluation and the PyTorch runner rebuild that same head from a checkpoint's
metadata (``head_hidden``), so the head is decided here, once, below every caller.
"""

from __future__ import annotations

import torch
from torch import nn


class HiddenHead(nn.Sequential):
    """``in -> hidden -> ReLU -> Dropout -> classes``; a conv variant for conv classifiers (SqueezeNet)."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, conv: bool = False, dropout: float = 0.2):
        if conv:
            layers = [nn.Conv2d(in_features, hidden, 1), nn.ReLU(), nn.Dropout(dropout), nn.Conv2d(hidden, num_classes, 1)]
        else:
            layers = [nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)]
        super().__init__(*layers)


def find_head(model: nn.Module) -> tuple[str, nn.Module]:
    """(dotted name, module) of the module whose output is the logits.

    The last HiddenHead if there is one, else the last Linear (or 1x1 Conv2d) in registration
    order: every family registers its classifier last.
    """
    found = None
    for name, module in model.named_modules():
        if isinstance(module, HiddenHead):
            return name, module
        if isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)):
            found = (name, module)
    if found is None:
        raise RuntimeError(f"{type(model).__name__} has no Linear or 1x1 conv classifier")
    return found


def head_in_features(model: nn.Module) -> int:
    """Width of the layer before the classifier (the features a new head starts from)."""
    _, head = find_head(model)
    first = head[0] if isinstance(head, HiddenHead) else head
    return first.in_features if isinstance(first, nn.Linear) else first.in_channels


def replace_head(model: nn.Module, num_classes: int, hidden: int | None = None) -> nn.Module:
    """A fresh head for ``num_classes`` outputs (with a hidden layer of ``hidden`` units when given)."""
    name, head = find_head(model)
    first = head[0] if isinstance(head, HiddenHead) else head
    conv = isinstance(first, nn.Conv2d)
    in_features = first.in_channels if conv else first.in_features
    if hidden:
        new: nn.Module = HiddenHead(in_features, hidden, num_classes, conv=conv)
    elif conv:
        new = nn.Conv2d(in_features, num_classes, 1)
    else:
        new = nn.Linear(in_features, num_classes)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return new


class PenultimateFeatures:
    """Context manager: records the input of the head (global-average-pooled when spatial) per forward."""

    def __init__(self, model: nn.Module) -> None:
        self.head = find_head(model)[1]
        self.features: list[torch.Tensor] = []
        self._handle = None

    def _hook(self, module, inputs) -> None:
        x = inputs[0]
        if x.ndim == 4:
            x = x.mean((2, 3))
        self.features.append(x.detach().flatten(1))

    def __enter__(self) -> "PenultimateFeatures":
        self._handle = self.head.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()

    def take(self) -> torch.Tensor:
        out = torch.cat(self.features) if self.features else torch.empty(0)
        self.features = []
        return out
