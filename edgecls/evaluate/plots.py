"""Evaluation plots (matplotlib, Agg): confusion-matrix heatmaps and reliability diagrams."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# Above this many classes cell numbers are unreadable; the heatmap alone still shows the structure.
ANNOTATE_MAX_CLASSES = 20


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_heatmap(counts: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Counts (left) and row-normalised recall per true class (right), one PNG."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    counts = np.asarray(counts)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    n_true = counts.shape[0]
    # ConfusionMatrixDisplay wants a square matrix; an "(other)" column gets a row of zeros.
    if counts.shape[1] > n_true:
        pad = np.zeros((counts.shape[1] - n_true, counts.shape[1]))
        counts, normalised = np.vstack([counts, pad]), np.vstack([normalised, pad])
    side = min(4 + 0.45 * len(labels), 30)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1, side))
    annotate = len(labels) <= ANNOTATE_MAX_CLASSES
    for ax, matrix, name, fmt in ((axes[0], counts, "counts", "d"), (axes[1], normalised, "normalised by true class", ".2f")):
        display = ConfusionMatrixDisplay(matrix.astype(int) if fmt == "d" else matrix, display_labels=list(labels))
        display.plot(ax=ax, include_values=annotate, values_format=fmt, colorbar=False, cmap="Blues",
                     xticks_rotation="vertical")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_diagram(bins: Sequence[dict], ece: float, path: Path, title: str) -> Path:
    """Accuracy per confidence bin against the diagonal, with the bin counts below."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["high"] - bins[0]["low"]
    filled = [b for b in bins if b["count"]]  # an empty bin has no accuracy to draw
    centres = [(b["low"] + b["high"]) / 2 for b in filled]
    accuracy = [b["accuracy"] for b in filled]
    confidence = [b["confidence"] for b in filled]
    top.bar(centres, accuracy, width=width, edgecolor="black", color="#4c72b0", label="accuracy")
    top.bar(centres, np.subtract(confidence, accuracy), bottom=accuracy, width=width, edgecolor="#c44e52",
            color="#c44e52", alpha=0.3, label="gap to confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"{title}\nECE {ece:.3f} ({len(bins)} bins)")
    top.legend(loc="upper left")
    bottom.bar(centres, [b["count"] for b in filled], width=width, color="gray", edgecolor="black")
    bottom.set_xlabel("confidence (max softmax)")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def resolution_sweep(points: dict[str, list[tuple]], path: Path) -> Path:
    """Top-1 and top-5 against input side, one line per model: ``points[model] = [(side, top1, top5[, p50_ms])]``;
    p50 latency (when measured) on a second panel."""
    plt = _pyplot()
    timed = any(len(r) > 3 and r[3] is not None for rows in points.values() for r in rows)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 6, 4.2), squeeze=False)
    ax = axes[0][0]
    for model, rows in sorted(points.items()):
        rows = sorted(rows, key=lambda r: r[0])
        line, = ax.plot([r[0] for r in rows], [100 * r[1] for r in rows], "o-", label=f"{model} top-1")
        ax.plot([r[0] for r in rows], [100 * r[2] for r in rows], "s--", color=line.get_color(), alpha=0.6,
                label=f"{model} top-5")
        if timed:
            timed_rows = [r for r in rows if len(r) > 3 and r[3] is not None]
            axes[0][1].plot([r[0] for r in timed_rows], [r[3] for r in timed_rows], "o-", color=line.get_color(),
                            label=model)
    ax.set_xlabel("input side (pixels)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs input resolution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if timed:
        lat = axes[0][1]
        lat.set_xlabel("input side (pixels)")
        lat.set_ylabel("p50 latency (ms, batch 1)")
        lat.set_title("latency vs input resolution")
        lat.grid(alpha=0.3)
        lat.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["confusion_heatmap", "reliability_diagram", "resolution_sweep"]
