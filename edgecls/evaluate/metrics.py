"""Accuracy figures of one set of predictions, and of an artifact against its reference.

scikit-learn computes every standard metric (top-k, per-class precision/recall/F1, balanced
accuracy, the confusion matrix). Expected calibration error is written here: scikit-learn has
``calibration_curve`` for binary problems only and no ECE.

Labels live in the model's output index space (``y_true`` after ``map_classes``); ``classes``
are the dataset's class names and ``class_outputs`` their output indices. A prediction outside
the dataset's classes (an ImageNet head on a 10-class subset) is counted in an extra "(other)"
column of the confusion matrix.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ECE_BINS = 15
OTHER = "(other)"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins (Guo et al., 2017), and the per-bin table behind it."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edge_i, edge_i+1]; confidence 0 (impossible after softmax) would go to bin 0.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for i in range(bins):
        mask = which == i
        n = int(mask.sum())
        acc = float(correct[mask].mean()) if n else None
        conf = float(confidence[mask].mean()) if n else None
        if n:
            ece += n / len(confidence) * abs(acc - conf)
        table.append({"low": float(edges[i]), "high": float(edges[i + 1]), "count": n, "accuracy": acc, "confidence": conf})
    return float(ece), table


def _column_labels(class_outputs: Sequence[int], predictions: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Confusion-matrix labels and predictions with outputs outside the dataset's classes as -1."""
    labels = list(class_outputs)
    inside = np.isin(predictions, labels)
    if inside.all():
        return labels, predictions
    return labels + [-1], np.where(inside, predictions, -1)


def classification_metrics(y_true: np.ndarray, logits: np.ndarray, classes: Sequence[str],
                           class_outputs: Sequence[int]) -> dict:
    """Every figure of one target on one dataset, JSON-ready (the confusion matrix as nested lists)."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

    y_true = np.asarray(y_true)
    logits = np.asarray(logits, dtype=np.float32)
    n_outputs = logits.shape[1]
    predictions = logits.argmax(axis=1)
    probabilities = softmax(logits)
    confidence = probabilities.max(axis=1)
    correct = predictions == y_true
    all_outputs = np.arange(n_outputs)
    top5 = top_k_accuracy_score(y_true, logits, k=min(5, n_outputs), labels=all_outputs) if n_outputs > 2 else float(correct.mean())
    labels, columns = _column_labels(class_outputs, predictions)
    matrix = confusion_matrix(y_true, columns, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predictions, labels=list(class_outputs), zero_division=0)
    ece, bins = expected_calibration_error(confidence, correct)
    per_class = [
        {"class": name, "output": int(out), "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, out, p, r, f, s in zip(classes, class_outputs, precision, recall, f1, support)
    ]
    return {
        "images": int(len(y_true)),
        "top1": float(correct.mean()),
        "top5": float(top5),
        "balanced_accuracy": float(np.mean(recall)) if len(labels) > len(classes) else float(balanced_accuracy_score(y_true, predictions)),
        "macro_f1": float(np.mean(f1)),
        "ece": ece,
        "ece_bins": ECE_BINS,
        "mean_confidence": float(confidence.mean()),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(classes) + ([OTHER] if len(labels) > len(classes) else []),
                             "counts": matrix.tolist()},
        "reliability": bins,
    }


def compare_with_reference(y_true: np.ndarray, logits: np.ndarray, reference_logits: np.ndarray,
                           classes: Sequence[str], class_outputs: Sequence[int], paths: Sequence[str],
                           output_names: Sequence[str] | None = None) -> dict:
    """Agreement of a target's top-1 with its reference's, per-class accuracy change, the flipped images."""
    y_true = np.asarray(y_true)
    pred = np.asarray(logits).argmax(axis=1)
    ref = np.asarray(reference_logits).argmax(axis=1)
    per_class = []
    for name, out in zip(classes, class_outputs):
        mask = y_true == out
        n = int(mask.sum())
        acc = float((pred[mask] == out).mean()) if n else 0.0
        ref_acc = float((ref[mask] == out).mean()) if n else 0.0
        per_class.append({"class": name, "accuracy": acc, "reference_accuracy": ref_acc, "change": acc - ref_acc, "support": n})

    def label(index: int) -> str:
        return output_names[index] if output_names is not None and index < len(output_names) else str(index)

    flips = [
        {"image": str(paths[i]), "true": label(int(y_true[i])), "reference": label(int(ref[i])), "prediction": label(int(pred[i])),
         "reference_correct": bool(ref[i] == y_true[i]), "correct": bool(pred[i] == y_true[i])}
        for i in np.flatnonzero(pred != ref)
    ]
    return {
        "agreement": float((pred == ref).mean()),
        "top1_change": float((pred == y_true).mean() - (ref == y_true).mean()),
        "flipped": len(flips),
        "fixed": sum(f["correct"] for f in flips),
        "broken": sum(f["reference_correct"] for f in flips),
        "per_class": per_class,
        "flips": flips,
    }


__all__ = ["ECE_BINS", "OTHER", "classification_metrics", "compare_with_reference", "expected_calibration_error", "softmax"]
