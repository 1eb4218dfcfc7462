"""The training report: curves, confusion matrix and per-class recall on the validation split (PNGs + markdown)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict], best_epoch: int, path: Path) -> Path:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["val_balanced_accuracy"] for h in history], label="validation balanced accuracy")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], label="validation accuracy", alpha=0.6)
    ax_acc.axvline(best_epoch, color="grey", linestyle="--", label=f"kept: epoch {best_epoch}")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_xlabel("epoch")
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_recall(recalls: dict[str, Sequence[float]], classes: Sequence[str], path: Path) -> Path:
    """Per-class recall bars, one colour per run (a single run, or runs compared)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(classes) * max(1, len(recalls))), 4))
    width = 0.8 / len(recalls)
    x = np.arange(len(classes))
    for i, (label, values) in enumerate(recalls.items()):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=label)
    ax.set_xticks(x, list(classes), rotation=90 if len(classes) > 20 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.set_title("per-class recall (validation)")
    if len(recalls) > 1:
        ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _per_class(labels: np.ndarray, predictions: np.ndarray, n: int):
    from sklearn.metrics import confusion_matrix, recall_score

    matrix = confusion_matrix(labels, predictions, labels=list(range(n)))
    recall = recall_score(labels, predictions, labels=list(range(n)), average=None, zero_division=0)
    return matrix, recall


def write_report(result, meta: dict) -> Path:
    """report.md with curves.png, confusion.png and recall.png beside it in the run folder."""
    from sklearn.metrics import balanced_accuracy_score

    from edgecls.evaluate.plots import confusion_heatmap

    out = Path(result.out)
    classes = result.classes
    matrix, recall = _per_class(result.val_labels, result.val_predictions, len(classes))
    plot_curves(result.history, result.best_epoch, out / "curves.png")
    confusion_heatmap(matrix, classes, out / "confusion.png", f"{meta['model']}: validation, epoch {result.best_epoch}")
    plot_recall({"recall": recall}, classes, out / "recall.png")
    train = meta["train"]
    lines = [
        f"# Training report: {meta['model']} on {train['data']}",
        "",
        f"- start: {'built-in pretrained' if train['pretrained'] else train['weights'] or 'random weights'}; "
        f"{'frozen backbone' if train['freeze_backbone'] else 'full fine-tuning'}; head "
        f"{'hidden ' + str(meta['head_hidden']) + ' -> ' if meta['head_hidden'] else ''}{len(classes)} classes",
        f"- resolution {meta['preprocessing']['resolution']} px, optimizer {train['optimizer']}, loss {train['loss']}, "
        f"class weights {train['class_weights']}, sampler {train['sampler']}, augment {train['augment']}, seed {train['seed']}",
        f"- epochs run {len(result.history)} of {train['epochs']}, kept epoch {result.best_epoch} "
        f"(best validation balanced accuracy {balanced_accuracy_score(result.val_labels, result.val_predictions):.4f})",
        f"- checkpoint: `{result.checkpoint.name}` (class names and preprocessing in its header and in "
        f"`{result.checkpoint.with_suffix('.json').name}`)",
        *[f"- warning: {w}" for w in result.warnings],
        "",
        "![curves](curves.png)",
        "",
        "## Validation split",
        "",
        "![confusion matrix](confusion.png)",
        "",
        "![per-class recall](recall.png)",
        "",
        "| class | train images | validation images | recall |",
        "|---|---:|---:|---:|",
    ]
    for i, name in enumerate(classes):
        lines.append(f"| {name} | {train['train_counts'][i]} | {train['val_counts'][i]} | {recall[i]:.3f} |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def compare_runs(runs: dict[str, Path], out: Path) -> Path:
    """One markdown page, confusion matrices side by side and per-class recall of several runs
    (e.g. unweighted vs --class-weights inverse vs --sampler oversample) on their validation splits."""
    plt = _pyplot()
    from sklearn.metrics import ConfusionMatrixDisplay

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = {label: json.loads((Path(folder) / "validation.json").read_text()) for label, folder in runs.items()}
    classes = next(iter(loaded.values()))["classes"]
    fig, axes = plt.subplots(1, len(loaded), figsize=(4.5 * len(loaded), 4.5), squeeze=False)
    recalls = {}
    for ax, (label, data) in zip(axes[0], loaded.items()):
        matrix, recall = _per_class(np.asarray(data["labels"]), np.asarray(data["predictions"]), len(classes))
        recalls[label] = recall
        ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, colorbar=False, cmap="Blues")
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(out / "confusion_compared.png", dpi=110)
    plt.close(fig)
    plot_recall(recalls, classes, out / "recall_compared.png")
    lines = ["# Runs compared (validation splits)", "", "![confusion matrices](confusion_compared.png)", "",
             "![per-class recall](recall_compared.png)", "",
             "| class | " + " | ".join(recalls) + " |", "|---|" + "---:|" * len(recalls)]
    for i, name in enumerate(classes):
        lines.append(f"| {name} | " + " | ".join(f"{r[i]:.3f}" for r in recalls.values()) + " |")
    path = out / "compare.md"
    path.write_text("\n".join(lines) + "\n")
    return path
