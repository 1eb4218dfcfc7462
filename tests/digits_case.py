"""scikit-learn's handwritten digits (1,797 real scans, 10 classes) as labeled RGB images, and a
small edgecls model trained on them: the real labeled data of the evaluation and int8-budget tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = [str(i) for i in range(10)]


def digit_images(resolution: int):
    """(PIL RGB images upscaled to ``resolution`` px, integer labels)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [Image.fromarray((img * (255 / 16)).astype(np.uint8)).resize((resolution, resolution), Image.NEAREST)
              .convert("RGB") for img in digits.images]
    return images, digits.target


def write_folder(images, labels, indices, folder: Path, by_class: bool = True) -> Path:
    """The chosen images as PNGs: one subfolder per class (``by_class``) or all in ``folder``."""
    for i in indices:
        where = folder / CLASSES[labels[i]] if by_class else folder
        where.mkdir(parents=True, exist_ok=True)
        images[i].save(where / f"{i:04d}.png")
    return folder


def train(model_name: str, x: np.ndarray, y: np.ndarray, epochs: int = 6, batch: int = 64):
    """The model trained from scratch on ``x`` (NCHW, preprocessed) / ``y``, seeded, in eval mode."""
    import torch

    from edgecls.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=len(CLASSES)).train()
    steps = epochs * -(-len(x) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for start in range(0, len(x), batch):
            index = order[start:start + batch]
            loss = torch.nn.functional.cross_entropy(model(xt[index]), yt[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def save_checkpoint(model, path: Path) -> Path:
    """A safetensors checkpoint carrying its class names (edgecls.datasets.checkpoint_classes)."""
    import json

    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"classes": json.dumps(CLASSES)})
    return path
