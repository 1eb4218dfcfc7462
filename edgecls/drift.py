"""`edgecls drift`: has the data a deployed model sees moved away from the data it was built on?

Four views, each a two-sample test between a reference folder and a current folder:
- input statistics per image (width, height, brightness, contrast): Kolmogorov-Smirnov (scipy);
- with a model, its embedding (the features entering the classifier): kernel MMD with an RBF
  kernel, median-heuristic bandwidth and a permutation p-value (Gretton et al., JMLR 2012);
- the prediction distribution (per-class frequencies): chi-square on the 2 x K table (scipy);
- the confidence (max softmax probability): Kolmogorov-Smirnov.

The MMD test is own code: the libraries that ship one (alibi-detect, torchdrift) pull TensorFlow
or pin old torch releases and are not maintained for torch 2.13; the statistic is ~20 lines of
numpy over one kernel matrix, and permutations only re-index that matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError

MIN_IMAGES = 10  # per side: fewer make every test meaningless
INPUT_STATS = ("width", "height", "brightness", "contrast")


def _read_folder(folder) -> tuple[list, list[Path], list[Path]]:
    from edgecls.datasets import read_image
    from edgecls.preprocess import find_images

    paths = find_images(folder)
    images, kept, bad = [], [], []
    for path in paths:
        image = read_image(path)
        if image is None:
            bad.append(path)
        else:
            images.append(image)
            kept.append(path)
    if len(images) < MIN_IMAGES:
        raise EdgeclsError(f"{folder} has {len(images)} readable images: drift needs at least {MIN_IMAGES} on each side")
    return images, kept, bad


def input_statistics(images) -> dict[str, np.ndarray]:
    """Per image: width, height, brightness (mean luma, 0-255) and contrast (luma standard deviation)."""
    luma = [np.asarray(img.convert("L"), dtype=np.float64) for img in images]
    return {"width": np.asarray([img.size[0] for img in images], dtype=np.float64),
            "height": np.asarray([img.size[1] for img in images], dtype=np.float64),
            "brightness": np.asarray([y.mean() for y in luma]), "contrast": np.asarray([y.std() for y in luma])}


def _ks(a: np.ndarray, b: np.ndarray) -> dict:
    from scipy.stats import ks_2samp

    if np.ptp(np.concatenate([a, b])) == 0:  # identical constants (e.g. every image 32 px wide): no evidence
        return {"statistic": 0.0, "p_value": 1.0}
    result = ks_2samp(a, b)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 500, seed: int = 0) -> dict:
    """Unbiased MMD^2 between samples ``x`` (n, d) and ``y`` (m, d) with its permutation p-value."""
    z = np.concatenate([x, y]).astype(np.float64)
    n = len(x)
    sq = np.maximum(np.sum(z ** 2, 1)[:, None] + np.sum(z ** 2, 1)[None, :] - 2.0 * z @ z.T, 0.0)
    off = sq[np.triu_indices(len(z), 1)]
    bandwidth = float(np.sqrt(np.median(off[off > 0]) / 2.0)) if (off > 0).any() else 1.0  # median heuristic
    kernel = np.exp(-sq / (2.0 * bandwidth ** 2))

    def statistic(order: np.ndarray) -> float:
        k = kernel[np.ix_(order, order)]
        kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
        m = len(z) - n
        return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                     - 2.0 * kxy.mean())

    observed = statistic(np.arange(len(z)))
    rng = np.random.default_rng(seed)
    null = np.asarray([statistic(rng.permutation(len(z))) for _ in range(permutations)])
    # (1 + #{null >= observed}) / (1 + P): a valid p-value, never exactly 0.
    p_value = float((1 + np.sum(null >= observed)) / (1 + permutations))
    return {"mmd2": observed, "p_value": p_value, "bandwidth": bandwidth, "permutations": permutations,
            "null": null.tolist()}


def prediction_test(ref_pred: np.ndarray, cur_pred: np.ndarray, num_classes: int) -> dict:
    from scipy.stats import chi2_contingency

    table = np.stack([np.bincount(ref_pred, minlength=num_classes), np.bincount(cur_pred, minlength=num_classes)])
    used = table.sum(0) > 0
    if used.sum() < 2:  # both sides predict one and the same class: the frequencies agree
        return {"chi2": 0.0, "p_value": 1.0, "dof": 0, "reference_counts": table[0].tolist(),
                "current_counts": table[1].tolist()}
    chi2, p, dof, _ = chi2_contingency(table[:, used])
    return {"chi2": float(chi2), "p_value": float(p), "dof": int(dof), "reference_counts": table[0].tolist(),
            "current_counts": table[1].tolist()}


def model_outputs(model_name: str, images, weights=None, pretrained: bool = False, resolution: int | None = None,
                  batch: int = 64) -> tuple[np.ndarray, np.ndarray, dict]:
    """(penultimate features, logits, preprocessing) of a PyTorch model for PIL ``images``."""
    import torch

    from edgecls.datasets import checkpoint_metadata
    from edgecls.models import create_model, get_model_info
    from edgecls.models.head import PenultimateFeatures
    from edgecls.preprocess import preprocess

    info = get_model_info(model_name)
    trained = checkpoint_metadata(weights) if weights else None
    pre = dict((trained or {}).get("preprocessing") or {"resolution": info.resolution, "mean": list(info.mean),
                                                        "std": list(info.std), "crop_pct": info.crop_pct,
                                                        "interpolation": info.interpolation})
    if resolution:
        pre["resolution"] = info.check_resolution(resolution)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # random weights: the same draw for reference and current
        model = create_model(info.name, weights=weights, pretrained=pretrained)
    x = np.stack([preprocess(img, pre["resolution"], pre["mean"], pre["std"], pre["crop_pct"], pre["interpolation"])
                  for img in images])
    logits = []
    with PenultimateFeatures(model) as hook, torch.inference_mode():
        for start in range(0, len(x), batch):
            logits.append(model(torch.from_numpy(x[start:start + batch])))
        features = hook.take()
    return features.numpy(), torch.cat(logits).numpy(), pre


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def detect_drift(reference, current, model: str | None = None, weights=None, pretrained: bool = False,
                 resolution: int | None = None, permutations: int = 500, alpha: float = 0.01, seed: int = 0,
                 out=None) -> dict:
    """The drift report (dict), written to ``out`` as drift.json, report.md and plots when ``out`` is given."""
    if not 0 < alpha < 1:
        raise InvalidArgumentError(f"--alpha must be between 0 and 1 (e.g. 0.01), got {alpha}")
    if permutations < 20:
        raise InvalidArgumentError(f"--permutations must be at least 20 for a p-value, got {permutations}")
    if model is None and (weights or pretrained):
        raise InvalidArgumentError("--weights / --pretrained need a MODEL name")
    if model is not None:
        from edgecls.models import get_model_info

        get_model_info(model)
        if weights and not Path(weights).is_file():
            raise EdgeclsError(f"weights file not found: {weights}")
    ref_images, ref_paths, ref_bad = _read_folder(reference)
    cur_images, cur_paths, cur_bad = _read_folder(current)
    ref_stats, cur_stats = input_statistics(ref_images), input_statistics(cur_images)
    tests: dict[str, dict] = {f"input_{k}": _ks(ref_stats[k], cur_stats[k]) for k in INPUT_STATS}
    report: dict = {"reference": str(reference), "current": str(current), "alpha": alpha,
                    "reference_images": len(ref_images), "current_images": len(cur_images),
                    "unreadable": [str(p) for p in ref_bad + cur_bad], "model": model,
                    "input_statistics": {side: {k: {"mean": float(v.mean()), "std": float(v.std())} for k, v in s.items()}
                                         for side, s in (("reference", ref_stats), ("current", cur_stats))}}
    embeddings = None
    if model is not None:
        ref_feat, ref_logits, pre = model_outputs(model, ref_images, weights, pretrained, resolution)
        cur_feat, cur_logits, _ = model_outputs(model, cur_images, weights, pretrained, resolution)
        tests["embedding_mmd"] = mmd_test(ref_feat, cur_feat, permutations, seed)
        tests["predictions"] = prediction_test(ref_logits.argmax(1), cur_logits.argmax(1), ref_logits.shape[1])
        ref_conf, cur_conf = _softmax(ref_logits).max(1), _softmax(cur_logits).max(1)
        tests["confidence"] = {**_ks(ref_conf, cur_conf), "reference_mean": float(ref_conf.mean()),
                               "current_mean": float(cur_conf.mean())}
        report["preprocessing"] = pre
        embeddings = (ref_feat, cur_feat, ref_conf, cur_conf)
    # Input statistics are four tests: Bonferroni keeps the family's false-alarm rate at alpha.
    drifted = [name for name, t in tests.items()
               if t["p_value"] < (alpha / len(INPUT_STATS) if name.startswith("input_") else alpha)]
    report["tests"] = tests
    report["drifted"] = drifted
    figures = ", ".join(f"{name} p={t['p_value']:.3g}" for name, t in tests.items())
    report["verdict"] = (f"DRIFT ({', '.join(drifted)}): {figures}" if drifted else f"no drift at alpha {alpha}: {figures}")
    if drifted:
        report["hint"] = ("int8 artifacts were calibrated on data like the reference: re-export them with "
                          f"`edgecls export ... --int8 --calib {current}` so the quantization ranges fit the current data")
    if out is not None:
        report["report"] = str(_write(report, ref_stats, cur_stats, embeddings, Path(out)))
    return report


def _write(report: dict, ref_stats: dict, cur_stats: dict, embeddings, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(INPUT_STATS), figsize=(4 * len(INPUT_STATS), 3.5))
    for ax, key in zip(axes, INPUT_STATS):
        both = np.concatenate([ref_stats[key], cur_stats[key]])
        bins = np.linspace(both.min(), both.max() + 1e-9, 30)
        ax.hist(ref_stats[key], bins=bins, alpha=0.5, density=True, label="reference")
        ax.hist(cur_stats[key], bins=bins, alpha=0.5, density=True, label="current")
        ax.set_title(f"{key} (KS p={report['tests'][f'input_{key}']['p_value']:.3g})", fontsize=9)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "inputs.png", dpi=110)
    plt.close(fig)
    images = ["inputs.png"]
    if embeddings is not None:
        ref_feat, cur_feat, ref_conf, cur_conf = embeddings
        tests = report["tests"]
        fig, axes = plt.subplots(1, 4, figsize=(18, 4))
        z = np.concatenate([ref_feat, cur_feat])
        z = z - z.mean(0)
        _, _, vt = np.linalg.svd(z, full_matrices=False)  # PCA to 2-D, only to look at
        p = z @ vt[:2].T
        axes[0].scatter(*p[:len(ref_feat)].T, s=6, alpha=0.5, label="reference")
        axes[0].scatter(*p[len(ref_feat):].T, s=6, alpha=0.5, label="current")
        axes[0].set_title("embedding (PCA)")
        axes[0].legend()
        mmd = tests["embedding_mmd"]
        axes[1].hist(mmd["null"], bins=30, color="grey")
        axes[1].axvline(mmd["mmd2"], color="red", label=f"observed, p={mmd['p_value']:.3g}")
        axes[1].set_title("MMD^2: permutation null vs observed")
        axes[1].legend()
        pred = tests["predictions"]
        k = np.arange(len(pred["reference_counts"]))
        ref_freq = np.asarray(pred["reference_counts"]) / max(1, sum(pred["reference_counts"]))
        cur_freq = np.asarray(pred["current_counts"]) / max(1, sum(pred["current_counts"]))
        shown = np.flatnonzero((ref_freq + cur_freq) > 0)[:50]
        axes[2].bar(np.arange(len(shown)) - 0.2, ref_freq[shown], 0.4, label="reference")
        axes[2].bar(np.arange(len(shown)) + 0.2, cur_freq[shown], 0.4, label="current")
        axes[2].set_xticks(np.arange(len(shown)), [str(i) for i in k[shown]], fontsize=7, rotation=90)
        axes[2].set_title(f"predicted classes (chi2 p={pred['p_value']:.3g})")
        bins = np.linspace(0, 1, 21)
        axes[3].hist(ref_conf, bins=bins, alpha=0.5, density=True, label="reference")
        axes[3].hist(cur_conf, bins=bins, alpha=0.5, density=True, label="current")
        axes[3].set_title(f"confidence (KS p={tests['confidence']['p_value']:.3g})")
        fig.tight_layout()
        fig.savefig(out / "model.png", dpi=110)
        plt.close(fig)
        images.append("model.png")
    saved = {k: v for k, v in report.items() if k != "report"}
    if "embedding_mmd" in saved.get("tests", {}):
        saved["tests"] = {**saved["tests"], "embedding_mmd": {k: v for k, v in saved["tests"]["embedding_mmd"].items()
                                                              if k != "null"}}
    (out / "drift.json").write_text(json.dumps(saved, indent=2) + "\n")
    lines = [f"# Drift: {report['current']} vs {report['reference']}", "", f"**{report['verdict']}**", ""]
    if report.get("hint"):
        lines += [f"> {report['hint']}", ""]
    lines += ["| test | statistic | p-value |", "|---|---:|---:|"]
    for name, t in report["tests"].items():
        stat = t.get("statistic", t.get("mmd2", t.get("chi2")))
        lines.append(f"| {name} | {stat:.4g} | {t['p_value']:.3g} |")
    lines += [""] + [f"![{i}]({i})" for i in images]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
