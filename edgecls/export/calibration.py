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
from edgecls.preprocess import (BUILTIN_PHOTOS, builtin_photo_path, find_images, load_image, photo_source, preprocess,
                                preprocess_for)

# Below this many images, activation ranges (and so int8 accuracy) depend on the few inputs chosen.
RECOMMENDED_CALIBRATION_SIZE = 100
# Source scenes (edgecls.preprocess.PHOTO_POOL) held out for parity: calibration never sees any
# file of these scenes, not even another crop. Split by source, not by crop: a crop of a photo
# calibration saw shares its colours, objects and activation ranges, and on pretrained
# tf_efficientnet_lite0 int8 agreed 96-100 % on such crops but only 86.7-88.3 % on crops of other
# photos (issue 9). Both halves mix scenes: held out, a cat, a cup, a portrait and a building;
# calibration, a person with a flag, a rocket on a gantry, a motorcycle (its two stereo files) and
# a flower.
PARITY_SOURCES = ("chelsea", "coffee", "grace_hopper", "china")
# Views of each parity photo: the whole photo (the model's own preprocessing), 7 fixed crops /
# flips, and seeded random-resized crops up to VIEWS_PER_PARITY_PHOTO. 4 photos x 16 = 64 views,
# so one flip moves agreement by 1.6 points and the Wilson interval of 95 % agreement is ~6 points
# wide. The views of one photo are correlated (the interval treats them as independent draws):
# it is a lower bound on the real uncertainty, stated beside the count.
VIEWS_PER_PARITY_PHOTO = 16
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
_PARITY_SEED = 9  # random parity views draw from their own seed space, never the calibration's
# The accuracy budget (--min-agreement) tunes on other random views of the held-out photos: never
# seen by calibration, and not the parity views that judge the result afterwards.
TUNING_VIEWS_PER_PHOTO = 12
_TUNING_SEED = 11
# A --calib folder holds out every 5th image for parity, at most this many: 64, like the built-in
# views, so one disagreement moves agreement by 1.6 points, not the 6.2 of the former 16 (where
# a 95 % gate failed on a single miss).
MAX_FOLDER_PARITY = 64
# A `train` checkpoint's own data (the default --calib): parity on up to this many images of its
# held-out validation split, stratified by class. At 128 the 95 % gate allows 6 disagreements, and
# the Wilson interval of 97 % agreement is about 6 points wide.
MAX_CHECKPOINT_PARITY = 128


@dataclass
class ImageSets:
    calibration: np.ndarray  # (N, 3, R, R) float32, normalized
    parity: np.ndarray  # (M, 3, R, R) float32, disjoint from calibration
    source: str  # "builtin" or the folder
    calibration_names: list[str] = field(default_factory=list)
    parity_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    calibration_sources: list[str] = field(default_factory=list)  # photos / scenes / classes each side drew from
    parity_sources: list[str] = field(default_factory=list)
    stratified: bool = False  # a labeled --calib folder: both sides keep its class proportions

    kind: str = ""  # "builtin", "folder" or "checkpoint-data" (a `train` checkpoint's own folder and split)
    calibration_from: str = ""  # in words: which images calibrated int8
    parity_from: str = ""  # in words: which images parity was checked on

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = "builtin" if self.source == "builtin" else "folder"
        if not self.calibration_from:
            self.calibration_from = ("built-in photos (ImageNet scenes) other than the parity scenes" if self.kind == "builtin"
                                     else f"the images of {self.source} not held out for parity")
        if not self.parity_from:
            self.parity_from = (f"views of the built-in photos {', '.join(PARITY_SOURCES)}" if self.kind == "builtin"
                                else f"every 5th image of {self.source} (at most {MAX_FOLDER_PARITY})")

    def describe(self) -> dict:
        return {"source": self.source, "kind": self.kind, "calibration_images": int(len(self.calibration)),
                "parity_images": int(len(self.parity)), "calibration_sources": self.calibration_sources,
                "parity_sources": self.parity_sources,
                "disjoint_by": "source photo" if self.kind == "builtin" else "split" if self.kind == "checkpoint-data" else "file",
                "stratified_by_class": self.stratified, "calibration_from": self.calibration_from,
                "parity_from": self.parity_from, "parity_names": self.parity_names}

    def describe_parity(self) -> dict:
        """Which inputs every artifact (any precision) was checked on: the manifest's ``parity_inputs``."""
        return {"source": self.source, "kind": self.kind, "images": int(len(self.parity)), "from": self.parity_from,
                "classes" if self.stratified else "sources": self.parity_sources}


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
    """``size`` calibration inputs from the built-in photos of every scene but PARITY_SOURCES, and
    parity inputs from views of the photos of PARITY_SOURCES.

    Calibration's first pass uses each photo whole (the model's own preprocessing); later passes
    take seeded random crops and flips, so the same ``size`` always gives the same arrays.
    """
    names = [n for n in BUILTIN_PHOTOS if photo_source(n) not in PARITY_SOURCES]
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
    parity_photos = [n for n in BUILTIN_PHOTOS if photo_source(n) in PARITY_SOURCES]
    for photo_index, name in enumerate(parity_photos):
        photo = load_image(builtin_photo_path(name))
        views = [_as_model_input(info, photo, resolution, whole=True)]
        views += [_as_model_input(info, _view(photo, box, flip), resolution, whole=False) for box, flip in _PARITY_VIEWS[1:]]
        for extra in range(VIEWS_PER_PARITY_PHOTO - len(views)):
            rng = np.random.default_rng([_PARITY_SEED, photo_index, extra])
            views.append(_as_model_input(info, _random_view(photo, rng), resolution, whole=False))
        parity += views
        parity_names += [f"{name}#{i}" for i in range(len(views))]
    sets = ImageSets(np.stack(calibration), np.stack(parity), "builtin", calibration_names, parity_names,
                     calibration_sources=sorted({photo_source(n) for n in names}), parity_sources=list(PARITY_SOURCES))
    if size < RECOMMENDED_CALIBRATION_SIZE:
        sets.warnings.append(f"only {size} calibration images (built-in photos): int8 ranges may be poor; "
                             f"use --calib-size {RECOMMENDED_CALIBRATION_SIZE} or more")
    return sets


def tuning_views(info, source: str | Path, resolution: int, sets: ImageSets) -> tuple[np.ndarray, list[str]]:
    """Inputs an accuracy budget tunes on: for the built-in pool, seeded random crops of the held-out
    photos that are neither calibration nor parity inputs; for a folder, its held-out parity images
    (the folder has no third share; the parity check then measures on the images the budget saw)."""
    if str(source) != "builtin":
        return sets.parity, list(sets.parity_names)
    views, names = [], []
    for photo_index, name in enumerate(n for n in BUILTIN_PHOTOS if photo_source(n) in PARITY_SOURCES):
        photo = load_image(builtin_photo_path(name))
        for i in range(TUNING_VIEWS_PER_PHOTO):
            rng = np.random.default_rng([_TUNING_SEED, photo_index, i])
            views.append(_as_model_input(info, _random_view(photo, rng), resolution, whole=False))
            names.append(f"{name}~{i}")
    return np.stack(views), names


def _class_of(path: Path, folder: Path) -> str | None:
    """The class of an image in a labeled folder: its first subfolder (None for a loose top-level file)."""
    parts = path.relative_to(folder).parts
    return parts[0] if len(parts) > 1 else None


def _spread(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (deterministic, keeps the order)."""
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(count)]


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """``total`` split over the classes in proportion to ``sizes`` (largest remainder), each <= its size."""
    whole = sum(sizes.values())
    shares = {c: total * n / whole for c, n in sizes.items()}
    counts = {c: min(sizes[c], int(share)) for c, share in shares.items()}
    for c in sorted(sizes, key=lambda c: shares[c] - int(shares[c]), reverse=True):
        if sum(counts.values()) >= total:
            break
        if counts[c] < sizes[c]:
            counts[c] += 1
    return counts


def folder_sets(info, folder: Path, resolution: int, size: int) -> ImageSets:
    """Calibration and parity images from a folder (recursive).

    Every k-th image is held out for parity. A labeled folder (one subfolder per class, two or
    more classes) is split per class: parity and calibration keep the folder's class proportions,
    so neither side is dominated by the class that sorts first or has the most files. Our own split
    rather than sklearn's train_test_split(stratify=...): that raises when a class has one image or
    the held-out count is below the number of classes, both normal for a small calibration folder.
    """
    folder = Path(folder)
    paths = find_images(folder)
    if not paths:
        raise EdgeclsError(f"no images (jpg/png/webp/bmp) in calibration folder {folder}: "
                           "point --calib at a folder of photos or use --calib builtin")
    if len(paths) < 2:
        raise EdgeclsError(f"calibration folder {folder} has 1 image: need at least 2 "
                           "(some are held out for the parity check)")
    by_class: dict[str, list[Path]] = {}
    for path in paths:
        by_class.setdefault(_class_of(path, folder) or "", []).append(path)
    stratified = len([c for c in by_class if c]) >= 2
    if not stratified:
        by_class = {"": paths}
    parity_count = min(MAX_FOLDER_PARITY, max(1, len(paths) // 5))
    # A class of one image stays in calibration: holding it out would leave calibration blind to it.
    parity_share = _allocate({c: len(p) - 1 for c, p in by_class.items() if len(p) > 1}, parity_count) \
        if stratified else {"": parity_count}
    parity_paths, rest_by_class = [], {}
    for cls, items in by_class.items():
        count = parity_share.get(cls, 0)
        step = len(items) / count if count else 0
        held = {int(i * step + step / 2) for i in range(count)}
        parity_paths += [p for i, p in enumerate(items) if i in held]
        rest_by_class[cls] = [p for i, p in enumerate(items) if i not in held]
    calibration_share = _allocate({c: len(p) for c, p in rest_by_class.items() if p}, size)
    rest = [p for cls, items in rest_by_class.items() for p in _spread(items, calibration_share.get(cls, 0))]
    calibration = np.stack([preprocess_for(info, load_image(p), resolution) for p in rest])
    parity = np.stack([preprocess_for(info, load_image(p), resolution) for p in parity_paths])
    classes = sorted(c for c in by_class if c)
    sets = ImageSets(calibration, parity, str(folder), [str(p.relative_to(folder)) for p in rest],
                     [str(p.relative_to(folder)) for p in parity_paths],
                     calibration_sources=sorted({_class_of(p, folder) or "" for p in rest} - {""}) or ["files"],
                     parity_sources=sorted({_class_of(p, folder) or "" for p in parity_paths} - {""}) or ["files"],
                     stratified=stratified)
    if len(rest) < RECOMMENDED_CALIBRATION_SIZE:
        sets.warnings.append(f"only {len(rest)} calibration images in {folder} ({len(parity_paths)} more held out "
                             f"for parity): int8 ranges may be poor; {RECOMMENDED_CALIBRATION_SIZE}+ recommended")
    if stratified and len(classes) > len(parity_paths):
        sets.warnings.append(f"{len(classes)} classes but {len(parity_paths)} parity images: "
                             "some classes are not in the parity check")
    return sets


@dataclass
class TrainingData:
    """The data a `train` checkpoint records: its folder, and the split it was validated on."""

    data: Path
    val: Path | None  # the --val folder; None: a stratified --val-split of ``data``
    val_split: float
    seed: int
    classes: list[str]
    val_counts: list[int] | None = None  # per class, as training counted them

    def describe(self) -> str:
        return (f"{self.data} (validation folder {self.val})" if self.val else
                f"{self.data} (validation split {self.val_split:g}, seed {self.seed})")


def _recorded_folder(value, checkpoint: Path) -> Path | None:
    """A folder (or CSV) a checkpoint names: absolute, or relative to the current folder or the checkpoint's."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, Path(checkpoint).parent / path]
    return next((c for c in candidates if c.exists()), None)


def training_data(meta: dict | None, checkpoint: str | Path) -> tuple[TrainingData | None, str | None]:
    """(the checkpoint's training data, None) or (None, why it cannot be used) for ``meta``, the
    metadata `edgecls train` stored (edgecls.datasets.checkpoint_metadata)."""
    train = (meta or {}).get("train")
    if not isinstance(train, dict) or not train.get("data"):
        return None, f"{Path(checkpoint).name} does not record the folder it was trained on"
    data = _recorded_folder(train["data"], checkpoint)
    if data is None:
        return None, f"the training folder {train['data']} that {Path(checkpoint).name} records is not found"
    val = None
    if train.get("val"):
        val = _recorded_folder(train["val"], checkpoint)
        if val is None:
            return None, f"the validation folder {train['val']} that {Path(checkpoint).name} records is not found"
    try:
        split, seed = float(train.get("val_split", 0.2)), int(train.get("seed", 0))
    except (TypeError, ValueError):
        return None, f"{Path(checkpoint).name} records an unreadable validation split"
    counts = train.get("val_counts")
    return TrainingData(data, val, split, seed, [str(c) for c in meta["classes"]],
                        counts if isinstance(counts, list) else None), None


def checkpoint_sets(info, training: TrainingData, resolution: int, size: int) -> ImageSets:
    """Calibration from the checkpoint's training images, parity on its held-out validation images.

    The split is recomputed exactly as `edgecls train` made it (edgecls.datasets.stratified_split,
    the recorded fraction and seed), or is the recorded --val folder. Both sides are stratified by
    class: ``size`` calibration images spread over the training split in its class proportions, and
    up to MAX_CHECKPOINT_PARITY parity images spread over the validation split. The model never
    trained on a parity image, and calibration never sees one.
    """
    from edgecls.datasets import load_dataset, read_image, stratified_split

    dataset = load_dataset(training.data)
    if dataset.classes != training.classes:
        raise EdgeclsError(f"the classes of {training.data} ({', '.join(dataset.classes[:5])}) are not the checkpoint's "
                           f"({', '.join(training.classes[:5])}): pass --calib DIR or --calib builtin")
    warnings = []
    if training.val is not None:
        train_set, val_set = dataset, load_dataset(training.val)
        if val_set.classes != dataset.classes:
            raise EdgeclsError(f"the classes of {training.val} are not those of {training.data}: pass --calib DIR")
    else:
        train_set, val_set = stratified_split(dataset, training.val_split, seed=training.seed)
    if training.val_counts is not None and val_set.counts() != list(training.val_counts):
        warnings.append(f"{training.data} changed since training (validation counts {val_set.counts()} vs "
                        f"{list(training.val_counts)} then): the recomputed held-out split may hold training images")

    def stratified(split, count: int) -> list[tuple[Path, int]]:
        by_class: dict[int, list[tuple[Path, int]]] = {}
        for path, label in split.items:
            by_class.setdefault(label, []).append((path, label))
        share = _allocate({c: len(v) for c, v in by_class.items()}, count)
        return [item for c in sorted(by_class) for item in _spread(by_class[c], share.get(c, 0))]

    def load(items, root: Path) -> tuple[np.ndarray, list[str], list[str]]:
        base = root if root.is_dir() else root.parent  # a folder, or a CSV of path,label
        arrays, names, classes = [], [], []
        for path, label in items:
            image = read_image(path)
            if image is None:
                continue  # a corrupt file: `train` skipped it too
            arrays.append(preprocess_for(info, image, resolution))
            path = Path(path)
            names.append(str(path.relative_to(base)) if path.is_relative_to(base) else str(path))
            classes.append(dataset.classes[label])
        if not arrays:
            raise EdgeclsError(f"no readable image in {root} for calibration or parity: pass --calib DIR")
        return np.stack(arrays), names, classes

    calibration, calibration_names, calibration_classes = load(stratified(train_set, size), training.data)
    parity, parity_names, parity_classes = load(stratified(val_set, min(MAX_CHECKPOINT_PARITY, len(val_set))),
                                                 training.val or training.data)
    held = "the validation folder " + str(training.val) if training.val else \
        f"the held-out validation split of {training.data} (val_split {training.val_split:g}, seed {training.seed})"
    sets = ImageSets(calibration, parity, str(training.data), calibration_names, parity_names, warnings,
                     calibration_sources=sorted(set(calibration_classes)), parity_sources=sorted(set(parity_classes)),
                     stratified=True, kind="checkpoint-data",
                     calibration_from=f"{len(calibration)} training images of {training.data}, stratified by class "
                                      "(the checkpoint's own data)",
                     parity_from=f"{len(parity)} images of {held}, stratified by class (the checkpoint never trained on them)")
    if len(calibration) < min(size, RECOMMENDED_CALIBRATION_SIZE):
        sets.warnings.append(f"only {len(calibration)} calibration images in the training split of {training.data}: "
                             f"int8 ranges may be poor; {RECOMMENDED_CALIBRATION_SIZE}+ recommended")
    if len(set(parity_classes)) < len(dataset.classes):
        sets.warnings.append(f"{len(dataset.classes)} classes but {len(parity)} parity images: "
                             "some classes are not in the parity check")
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


__all__ = ["ImageSets", "MAX_CHECKPOINT_PARITY", "MAX_FOLDER_PARITY", "PARITY_SOURCES", "RECOMMENDED_CALIBRATION_SIZE",
           "TrainingData", "builtin_sets", "checkpoint_sets", "folder_sets", "load_image_sets", "pixel_bytes",
           "training_data", "tuning_views"]
