"""`edgecls data DIR`: what a dataset looks like before training on it, and the `train` settings it calls for.

Class counts and the imbalance ratio (largest / smallest class), image sizes and aspect ratios,
duplicates (identical files by SHA-256 of their bytes, identical pictures by SHA-256 of the
decoded pixels; a duplicate across classes is a label conflict), corrupt files, and suggestions.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

# Imbalance ratios above these call for class weights / oversampling (a common rule of thumb:
# below ~3:1 plain cross-entropy on a stratified split copes). Beyond ~10:1 oversampling: on
# digits at 10.7:1 (tests/test_train.py) it kept the better balance (validation balanced accuracy
# 0.63 vs 0.51 with inverse weights, unweighted 0.43); both at once over-correct (the common
# classes' recall collapses), so only one is suggested.
IMBALANCE_WEIGHTS = 3.0
IMBALANCE_SEVERE = 10.0
SMALL_DATASET = 2000  # below this, a frozen pretrained backbone generalises better than full fine-tuning
FEW_PER_CLASS = 100  # below this per class, strong augmentation


def analyse(folder, show_progress: bool = False) -> dict:
    """The data report as a dict (see the module docstring); EdgeclsError for data that cannot be read at all."""
    from rich.progress import Progress

    from edgecls.datasets import load_dataset, read_image

    dataset = load_dataset(folder)
    sizes, corrupt = [], []
    by_bytes: dict[str, list[int]] = defaultdict(list)
    by_pixels: dict[str, list[int]] = defaultdict(list)
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("reading images", total=len(dataset))
        for index, (path, _) in enumerate(dataset.items):
            by_bytes[hashlib.sha256(path.read_bytes()).hexdigest()].append(index)
            image = read_image(path)
            if image is None:
                corrupt.append(index)
                sizes.append(None)
            else:
                sizes.append(image.size)
                by_pixels[hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()].append(index)
            progress.advance(task)
    counts = dataset.counts()
    readable = np.bincount([c for i, (_, c) in enumerate(dataset.items) if sizes[i] is not None],
                           minlength=len(dataset.classes))
    groups = [g for g in by_pixels.values() if len(g) > 1]
    files = [g for g in by_bytes.values() if len(g) > 1]
    duplicates = [{"files": [str(dataset.items[i][0]) for i in g],
                   "classes": sorted({dataset.classes[dataset.items[i][1]] for i in g})} for g in groups]
    wh = np.asarray([s for s in sizes if s is not None], dtype=np.float64).reshape(-1, 2)
    aspect = wh[:, 0] / wh[:, 1] if len(wh) else np.zeros(0)
    report = {
        "root": str(dataset.root),
        "classes": dataset.classes,
        "counts": counts,
        "readable_counts": readable.tolist(),
        "images": len(dataset),
        "imbalance_ratio": float(max(readable) / max(min(readable), 1)),
        "corrupt": [str(dataset.items[i][0]) for i in corrupt],
        "non_images": [str(p) for p in dataset.skipped],
        "duplicate_files": sum(len(g) - 1 for g in files),
        "duplicate_images": sum(len(g) - 1 for g in groups),
        "duplicates": duplicates,
        "conflicting_duplicates": [d for d in duplicates if len(d["classes"]) > 1],
        "sizes": [list(s) if s else None for s in sizes],
        "width": _stats(wh[:, 0]), "height": _stats(wh[:, 1]), "aspect_ratio": _stats(aspect),
    }
    report["suggestions"] = suggest(report)
    return report


def _stats(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max()),
            "p5": float(np.percentile(values, 5)), "p95": float(np.percentile(values, 95))}


def suggest(report: dict) -> dict:
    """`train` options for this data, each with the reason."""
    counts = report["readable_counts"]
    ratio = report["imbalance_ratio"]
    options: dict[str, str] = {}
    reasons: list[str] = []
    if ratio >= IMBALANCE_SEVERE:
        options["--sampler"] = "oversample"
        reasons.append(f"imbalance {ratio:.1f}:1: oversample the rare classes (or --class-weights inverse; not both)")
    elif ratio >= IMBALANCE_WEIGHTS:
        options["--class-weights"] = "inverse"
        reasons.append(f"imbalance {ratio:.1f}:1: weight classes by inverse frequency")
    total = sum(counts)
    if total < SMALL_DATASET:
        options.update({"--pretrained": "", "--freeze-backbone": ""})
        reasons.append(f"{total} images: start from pretrained weights and train the head first")
    else:
        options["--pretrained"] = ""
        reasons.append("start from pretrained weights (transfer learning) and fine-tune everything")
    smallest = min(counts) if counts else 0
    options["--augment"] = "strong" if smallest < FEW_PER_CLASS else "light"
    reasons.append(f"smallest class has {smallest} images: {options['--augment']} augmentation")
    val_split = min(0.5, max(0.2, 2.0 / max(smallest, 1)))
    if val_split > 0.2:
        options["--val-split"] = f"{val_split:.2f}"
        reasons.append(f"--val-split {val_split:.2f} keeps at least 2 validation images of the smallest class")
    short = min(report["width"].get("median", 224), report["height"].get("median", 224))
    if short < 224:
        side = max(32, int(short // 32) * 32)
        options["--resolution"] = str(side)
        reasons.append(f"median short side is {short:.0f} px: upscaling beyond it adds no detail, use {side}")
    if report["conflicting_duplicates"]:
        reasons.append(f"{len(report['conflicting_duplicates'])} identical picture(s) appear in several classes: fix the labels")
    if report["corrupt"]:
        reasons.append(f"{len(report['corrupt'])} corrupt file(s) will be skipped: remove or re-export them")
    command = " ".join(f"{k} {v}".strip() for k, v in options.items())
    return {"options": options, "reasons": reasons, "command": f"edgecls train MODEL --data {report['root']} --out OUT {command}"}


def print_summary(report: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"{report['root']}: {report['images']} images, {len(report['classes'])} classes")
    for column in ("class", "images", "readable"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, count, ok in zip(report["classes"], report["counts"], report["readable_counts"]):
        table.add_row(name, str(count), str(ok))
    console.print(table)
    w, h, a = report["width"], report["height"], report["aspect_ratio"]
    console.print(f"imbalance ratio {report['imbalance_ratio']:.1f}:1 (largest / smallest class)")
    if w:
        console.print(f"size: width {w['min']:.0f}-{w['max']:.0f} (median {w['median']:.0f}), height "
                      f"{h['min']:.0f}-{h['max']:.0f} (median {h['median']:.0f}); aspect ratio {a['min']:.2f}-{a['max']:.2f}")
    console.print(f"duplicates: {report['duplicate_files']} identical files, {report['duplicate_images']} identical "
                  f"pictures ({len(report['conflicting_duplicates'])} across classes); corrupt: {len(report['corrupt'])}; "
                  f"non-image files ignored: {len(report['non_images'])}")
    for reason in report["suggestions"]["reasons"]:
        console.print(f"- {reason}")
    console.print(f"[bold]suggested:[/bold] {report['suggestions']['command']}")


def write_report(report: dict, out) -> Path:
    """data_report.json, report.md and plots (class counts, sizes, aspect ratios) in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_report.json").write_text(json.dumps(report, indent=2) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].bar(range(len(report["classes"])), report["readable_counts"])
    axes[0].set_xticks(range(len(report["classes"])), report["classes"], rotation=90 if len(report["classes"]) > 15 else 0)
    axes[0].set_title(f"images per class (imbalance {report['imbalance_ratio']:.1f}:1)")
    wh = np.asarray([s for s in report["sizes"] if s], dtype=float).reshape(-1, 2)
    axes[1].scatter(wh[:, 0], wh[:, 1], s=8, alpha=0.5)
    axes[1].set_xlabel("width (px)")
    axes[1].set_ylabel("height (px)")
    axes[1].set_title("image sizes")
    axes[2].hist(wh[:, 0] / wh[:, 1] if len(wh) else [], bins=30)
    axes[2].set_title("aspect ratio (width / height)")
    fig.tight_layout()
    fig.savefig(out / "data.png", dpi=110)
    plt.close(fig)
    lines = [f"# Data report: {report['root']}", "", "![data](data.png)", "",
             f"- {report['images']} images, {len(report['classes'])} classes, imbalance {report['imbalance_ratio']:.1f}:1",
             f"- duplicates: {report['duplicate_files']} identical files, {report['duplicate_images']} identical pictures, "
             f"{len(report['conflicting_duplicates'])} across classes",
             f"- corrupt files: {len(report['corrupt'])}; non-image files: {len(report['non_images'])}", "",
             "## Suggested training", "", f"`{report['suggestions']['command']}`", "",
             *[f"- {r}" for r in report["suggestions"]["reasons"]], "",
             "| class | images | readable |", "|---|---:|---:|",
             *[f"| {c} | {n} | {r} |" for c, n, r in zip(report["classes"], report["counts"], report["readable_counts"])]]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
