"""Imbalance handling: class weights, the oversampling sampler, and the losses `train` offers."""

from __future__ import annotations

from typing import Sequence

import numpy as np

CLASS_WEIGHTS = ("none", "inverse", "effective-number")
SAMPLERS = ("none", "oversample")
LOSSES = ("ce", "focal", "label-smoothing")
# Cui et al. 2019 ("Class-Balanced Loss Based on Effective Number of Samples") use beta in
# [0.9, 0.9999]; 0.999 is their value for datasets of a few hundred to a few thousand per class.
EFFECTIVE_NUMBER_BETA = 0.999
LABEL_SMOOTHING = 0.1
FOCAL_GAMMA = 2.0


def class_weights(counts: Sequence[int], kind: str) -> np.ndarray | None:
    """Per-class loss weights, normalised to mean 1 (so the learning rate means the same), or None."""
    counts = np.asarray(counts, dtype=np.float64)
    if kind == "none":
        return None
    if kind == "inverse":
        weights = 1.0 / counts
    elif kind == "effective-number":
        weights = (1.0 - EFFECTIVE_NUMBER_BETA) / (1.0 - EFFECTIVE_NUMBER_BETA ** counts)
    else:
        raise ValueError(kind)
    return weights / weights.mean()


def sample_weights(labels: Sequence[int], counts: Sequence[int]) -> np.ndarray:
    """Per-image sampling weights that draw every class equally often (oversampling rare classes)."""
    return 1.0 / np.asarray(counts, dtype=np.float64)[np.asarray(labels)]


def make_loss(kind: str, weights: np.ndarray | None):
    """A callable (logits, targets) -> scalar loss."""
    import torch
    import torch.nn.functional as F

    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if kind == "ce":
        return lambda logits, y: F.cross_entropy(logits, y, weight=w)
    if kind == "label-smoothing":
        return lambda logits, y: F.cross_entropy(logits, y, weight=w, label_smoothing=LABEL_SMOOTHING)
    if kind == "focal":
        # Lin et al. 2017: (1 - p_t)^gamma down-weights easy examples; class weights act as alpha.
        def focal(logits, y):
            logp = F.log_softmax(logits, dim=1).gather(1, y[:, None])[:, 0]
            loss = -((1.0 - logp.exp()) ** FOCAL_GAMMA) * logp
            if w is not None:
                alpha = w[y]
                return (alpha * loss).sum() / alpha.sum()
            return loss.mean()

        return focal
    raise ValueError(kind)
