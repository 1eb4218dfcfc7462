"""Image loading and ImageNet-style preprocessing (resize shorter side, center crop, normalize).

Numpy and Pillow only, so the runtime-only install can feed artifacts the same way the export
pipeline calibrates and verifies them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from edgecls.errors import EdgeclsError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Real colour photos shipped inside scikit-image's package data (no download).
BUILTIN_PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
                  "hubble_deep_field", "retina", "horse")
_RESAMPLE = {"bilinear": 2, "bicubic": 3, "nearest": 0, "lanczos": 1}  # PIL.Image.Resampling values


def load_image(path: str | Path):
    """An RGB PIL image, or EdgeclsError naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise EdgeclsError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgeclsError(f"not a readable image: {path} ({exc.__class__.__name__})") from None


def find_images(folder: str | Path) -> list[Path]:
    """Image files below ``folder`` (recursive), sorted for determinism."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgeclsError(f"image folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def builtin_photo_path(name: str) -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeclsError("built-in photos come from scikit-image: pip install 'edgecls[export]'")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    for suffix in (".png", ".jpg"):
        if (data / f"{name}{suffix}").is_file():
            return data / f"{name}{suffix}"
    raise EdgeclsError(f"built-in photo '{name}' not found in scikit-image's data folder")


def preprocess(
    image,
    resolution: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop_pct: float = 0.875,
    interpolation: str = "bicubic",
) -> np.ndarray:
    """(3, R, R) float32: resize the shorter side to R / crop_pct, center-crop R, scale to [0, 1], normalize."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image.astype(np.uint8)).convert("RGB")
    width, height = image.size
    scale_size = int(np.floor(resolution / crop_pct))
    if width <= height:
        new_w, new_h = scale_size, int(scale_size * height / width)
    else:
        new_w, new_h = int(scale_size * width / height), scale_size
    image = image.resize((new_w, new_h), resample=_RESAMPLE.get(interpolation, 3))
    left = int(round((new_w - resolution) / 2.0))
    top = int(round((new_h - resolution) / 2.0))
    image = image.crop((left, top, left + resolution, top + resolution))
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_for(info, image, resolution: int | None = None) -> np.ndarray:
    """Preprocess ``image`` by a model's metadata (edgecls.models.ModelInfo)."""
    return preprocess(image, resolution or info.resolution, info.mean, info.std, info.crop_pct, info.interpolation)
