"""``edgecls predict``: top-k classes of images, from a model or exactly the artifact file an app embeds.

For an artifact, preprocessing and class names come from its manifest entry or the metadata the
exporter embedded, and it runs through its runtime only (no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError


def image_paths(items: Sequence[str]) -> list[Path]:
    """Image files named, or found below folders named, in order."""
    from edgecls.preprocess import IMAGE_SUFFIXES, find_images

    if not items:
        raise InvalidArgumentError("no image given: pass image files or folders of images")
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = find_images(path)
            if not found:
                raise EdgeclsError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise EdgeclsError(f"image not found: {path}")
    return paths


def predict(target: str, images: Sequence[str], top_k: int = 5, weights: str | None = None, pretrained: bool = False,
            num_classes: int | None = None, batch: int = 16, threads: int | None = None) -> dict:
    from edgecls.evaluate.metrics import softmax
    from edgecls.evaluate.run import collect_logits, resolve_targets

    if not isinstance(top_k, int) or top_k < 1:
        raise InvalidArgumentError(f"--top-k must be a positive integer, got {top_k!r}")
    paths = image_paths(images)
    targets, warnings = resolve_targets([target], weights, pretrained, num_classes, compare=False)
    if len(targets) != 1:
        raise InvalidArgumentError(f"{target} holds {len(targets)} artifacts: predict takes one artifact file or model")
    (one,) = targets
    logits, described, corrupt = collect_logits(targets, paths, batch, threads)
    scores = logits[id(one)]
    probabilities = softmax(scores)
    names = one.output_names
    good = [p for i, p in enumerate(paths) if i not in set(corrupt)]
    k = min(top_k, scores.shape[1])
    predictions = []
    for path, row, prob in zip(good, scores, probabilities):
        order = np.argsort(-row, kind="stable")[:k]
        predictions.append({"image": str(path), "top": [
            {"index": int(i), "label": names[i] if names and i < len(names) else str(int(i)),
             "probability": float(prob[i]), "logit": float(row[i])} for i in order]})
    return {"target": one.label, "format": one.format, "precision": one.precision, "model": one.model,
            **described[id(one)], "preprocessing": one.preprocessing.as_dict(), "predictions": predictions,
            "corrupt": [str(paths[i]) for i in corrupt], "warnings": warnings}


__all__ = ["image_paths", "predict"]
