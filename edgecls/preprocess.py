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
# Every natural colour photo that installed packages ship as package data (no download), as
# name -> (package, folder inside it, file, source scene). Two files of one scene (the motorcycle
# stereo pair) share a source: calibration and parity are split by source, never by file.
# Left out on purpose: scikit-image's grey images (camera, coins, moon...), textures, microscopy
# (ihc), medical (retina), astronomy (hubble_deep_field), the horse silhouette and the colour wheel;
# matplotlib's logo and clip-art present: none is a photo of something an ImageNet class names.
PHOTO_POOL = {
    "chelsea": ("skimage", "data", "chelsea.png", "chelsea"),
    "astronaut": ("skimage", "data", "astronaut.png", "astronaut"),
    "coffee": ("skimage", "data", "coffee.png", "coffee"),
    "rocket": ("skimage", "data", "rocket.jpg", "rocket"),
    "motorcycle_left": ("skimage", "data", "motorcycle_left.png", "motorcycle"),
    "motorcycle_right": ("skimage", "data", "motorcycle_right.png", "motorcycle"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data", "grace_hopper.jpg", "grace_hopper"),
    "china": ("sklearn", "datasets/images", "china.jpg", "china"),
    "flower": ("sklearn", "datasets/images", "flower.jpg", "flower"),
}
BUILTIN_PHOTOS = tuple(PHOTO_POOL)
_PHOTO_EXTRA = {"skimage": "scikit-image", "matplotlib": "matplotlib", "sklearn": "scikit-learn"}
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


def photo_source(name: str) -> str:
    """The scene a built-in photo shows (files of one scene share it)."""
    return PHOTO_POOL[name][3]


def builtin_photo_path(name: str) -> Path:
    """The file of a built-in photo, located without importing its package (sklearn alone takes ~1 s)."""
    if name not in PHOTO_POOL:
        raise EdgeclsError(f"unknown built-in photo '{name}': use one of {', '.join(PHOTO_POOL)}")
    package, folder, filename, _ = PHOTO_POOL[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeclsError(f"built-in photo '{name}' comes from {_PHOTO_EXTRA[package]}: pip install 'edgecls[export]'")
    path = Path(list(spec.submodule_search_locations)[0]) / folder / filename
    if not path.is_file():
        raise EdgeclsError(f"built-in photo '{name}' not found at {path}: reinstall {_PHOTO_EXTRA[package]}")
    return path


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
