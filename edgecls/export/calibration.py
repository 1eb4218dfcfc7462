"""Calibration and parity images: a folder of the user's photos, or the built-in photos.

Both sets are preprocessed exactly like the model's input (edgecls.preprocess) and never overlap:
quantization ranges come from one set, parity is measured on the other, so a converter cannot
pass parity by having seen the very inputs it is judged on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError
from edgecls.preprocess import BUILTIN_PHOTOS, builtin_photo_path, find_images, load_image, preprocess, preprocess_for

# Below this many images, activation ranges (and so int8 accuracy) depend on the few inputs chosen.
RECOMMENDED_CALIBRATION_SIZE = 100
# Built-in photos held out for parity, never used for calibration: the ones whose content is an
# ImageNet class a classifier decides clearly. int8 parity gates on top-1 agreement, and on a photo
# whose top two classes nearly tie (chelsea alone: "tiger cat" 0.39 vs "Egyptian Mau" 0.36 for the
# pretrained tf_efficientnet_lite0) any rounding flips the decision, so a set of one such photo
# measures the tie, not the converter. 3 photos x 8 views = 24 inputs, so one flip still leaves
# 95.8 % and the 95 % gate is meaningful. motorcycle_right is the stereo twin of motorcycle_left
# (a calibration photo): a different file of the same scene, not the same input.
PARITY_PHOTOS = ("chelsea", "coffee", "motorcycle_right")
# Held-out parity views of each parity photo: (left, top, right, bottom) as fractions, horizontal flip.
_PARITY_VIEWS = (
    ((0.0, 0.0, 1.0, 1.0), False),
    ((0.0, 0.0, 1.0, 1.0), True),
    ((0.10, 0.05, 0.80, 0.95), False),
    ((0.25, 0.10, 0.95, 0.90), True),
    ((0.05, 0.20, 0.70, 1.00), False),
    ((0.30, 0.00, 1.00, 0.75), False),
    ((0.15, 0.15, 0.85, 0.85), True),
    ((0.00, 0.30, 0.60, 0.95), True),
)
MAX_FOLDER_PARITY = 16


@dataclass
class ImageSets:
    calibration: np.ndarray  # (N, 3, R, R) float32, normalized
    parity: np.ndarray  # (M, 3, R, R) float32, disjoint from calibration
    source: str  # "builtin" or the folder
    calibration_names: list[str] = field(default_factory=list)
    parity_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"source": self.source, "calibration_images": int(len(self.calibration)),
                "parity_images": int(len(self.parity)), "parity_names": self.parity_names}


def _view(image, box: tuple[float, float, float, float], flip: bool):
    from PIL import Image

    width, height = image.size
    left, top, right, bottom = box
    view = image.crop((int(left * width), int(top * height), int(right * width), int(bottom * height)))
    return view.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else view


def _random_view(image, rng: np.random.Generator):
    """A random-resized-crop style view: 30-100 % of the area, aspect 3/4..4/3, flipped half the time."""
    width, height = image.size
    area = rng.uniform(0.3, 1.0) * width * height
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    crop_w = int(min(width, round(np.sqrt(area * aspect))))
    crop_h = int(min(height, round(np.sqrt(area / aspect))))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    box = (left / width, top / height, (left + crop_w) / width, (top + crop_h) / height)
    return _view(image, box, bool(rng.integers(0, 2)))


def _as_model_input(info, image, resolution: int, whole: bool) -> np.ndarray:
    if whole:
        return preprocess_for(info, image, resolution)
    # A view is already the region wanted: resize its shorter side to R and crop the centre.
    return preprocess(image, resolution, info.mean, info.std, 1.0, info.interpolation)


def builtin_sets(info, resolution: int, size: int) -> ImageSets:
    """``size`` calibration inputs from the built-in photos except the parity photos, and parity
    inputs from fixed views of the parity photos.

    The first pass uses each photo whole (the model's own preprocessing); later passes take
    seeded random crops and flips, so the same ``size`` always gives the same arrays.
    """
    names = [n for n in BUILTIN_PHOTOS if n not in PARITY_PHOTOS]
    photos = {n: load_image(builtin_photo_path(n)) for n in names}
    calibration, calibration_names = [], []
    for index in range(size):
        name = names[index % len(names)]
        round_ = index // len(names)
        if round_ == 0:
            calibration.append(_as_model_input(info, photos[name], resolution, whole=True))
        else:
            view = _random_view(photos[name], np.random.default_rng([round_, index]))
            calibration.append(_as_model_input(info, view, resolution, whole=False))
        calibration_names.append(f"{name}#{round_}")
    parity, parity_names = [], []
    for name in PARITY_PHOTOS:
        photo = load_image(builtin_photo_path(name))
        parity.append(_as_model_input(info, photo, resolution, whole=True))
        parity += [_as_model_input(info, _view(photo, box, flip), resolution, whole=False)
                   for box, flip in _PARITY_VIEWS[1:]]
        parity_names += [f"{name}#{i}" for i in range(len(_PARITY_VIEWS))]
    sets = ImageSets(np.stack(calibration), np.stack(parity), "builtin", calibration_names, parity_names)
    if size < RECOMMENDED_CALIBRATION_SIZE:
        sets.warnings.append(f"only {size} calibration images (built-in photos): int8 ranges may be poor; "
                             f"use --calib-size {RECOMMENDED_CALIBRATION_SIZE} or more")
    return sets


def folder_sets(info, folder: Path, resolution: int, size: int) -> ImageSets:
    """Calibration and parity images from a folder (recursive): every k-th image is held out for parity."""
    folder = Path(folder)
    paths = find_images(folder)
    if not paths:
        raise EdgeclsError(f"no images (jpg/png/webp/bmp) in calibration folder {folder}: "
                           "point --calib at a folder of photos or use --calib builtin")
    if len(paths) < 2:
        raise EdgeclsError(f"calibration folder {folder} has 1 image: need at least 2 "
                           "(some are held out for the parity check)")
    parity_count = min(MAX_FOLDER_PARITY, max(1, len(paths) // 5))
    step = len(paths) / parity_count
    parity_index = {int(i * step + step / 2) for i in range(parity_count)}
    parity_paths = [p for i, p in enumerate(paths) if i in parity_index]
    rest = [p for i, p in enumerate(paths) if i not in parity_index]
    if len(rest) > size:  # spread the selection over the (sorted, so often grouped by class) folder
        rest = [rest[int(i * len(rest) / size)] for i in range(size)]
    calibration = np.stack([preprocess_for(info, load_image(p), resolution) for p in rest])
    parity = np.stack([preprocess_for(info, load_image(p), resolution) for p in parity_paths])
    sets = ImageSets(calibration, parity, str(folder), [str(p.relative_to(folder)) for p in rest],
                     [str(p.relative_to(folder)) for p in parity_paths])
    if len(rest) < RECOMMENDED_CALIBRATION_SIZE:
        sets.warnings.append(f"only {len(rest)} calibration images in {folder} ({len(parity_paths)} more held out "
                             f"for parity): int8 ranges may be poor; {RECOMMENDED_CALIBRATION_SIZE}+ recommended")
    return sets


def pixel_bytes(images: np.ndarray, mean, std) -> np.ndarray:
    """Normalised NCHW images back to the RGB byte values they were made from (float32 0-255): the
    inputs of a ``--input-type uint8`` artifact. Exact, since preprocessing scales 8-bit crops."""
    mean = np.asarray(mean, dtype=np.float64).reshape(1, 3, 1, 1)
    std = np.asarray(std, dtype=np.float64).reshape(1, 3, 1, 1)
    pixels = np.round((np.asarray(images, dtype=np.float64) * std + mean) * 255.0)
    return np.clip(pixels, 0, 255).astype(np.float32)


def load_image_sets(info, source: str | Path, resolution: int, size: int) -> ImageSets:
    """The calibration/parity images for ``source``: ``"builtin"`` or a folder of images."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InvalidArgumentError(f"--calib-size must be a positive integer, got {size!r}")
    if str(source) == "builtin":
        return builtin_sets(info, resolution, size)
    path = Path(source)
    if not path.exists():
        raise EdgeclsError(f"calibration folder not found: {path} (use a folder of images or --calib builtin)")
    if not path.is_dir():
        raise EdgeclsError(f"--calib must be a folder of images or 'builtin', not the file {path}")
    return folder_sets(info, path, resolution, size)


__all__ = ["ImageSets", "RECOMMENDED_CALIBRATION_SIZE", "builtin_sets", "folder_sets", "load_image_sets", "pixel_bytes"]
