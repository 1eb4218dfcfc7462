"""Parity: does an artifact compute what the PyTorch model computes?

Three figures per artifact, all on held-out inputs against the PyTorch logits:
- ``max_rel_diff``: largest absolute difference divided by the largest absolute reference logit
  (a plain absolute tolerance would be meaningless across models whose logits span 1 or 30);
- ``min_cosine``: the worst per-input cosine similarity of the logit vectors;
- ``top1_agreement``: the share of inputs whose arg-max class is the same.

Which figure decides depends on the precision: fp32 must be numerically the same graph, fp16
must keep the direction of the logits, int8 must keep the decisions, bf16 (an 8-bit mantissa in
every multiply, fp32 accumulation) must keep the direction on average and, with real weights, the decisions.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FP32_MAX_REL_DIFF = 1e-4
FP16_MIN_COSINE = 0.999
DEFAULT_MIN_AGREEMENT = 0.95
# bf16 is judged by the mean cosine over the parity views, not the worst one: measured on
# pretrained tf_efficientnet_lite0 (OpenVINO 2026.4, Zen 4 AVX512_BF16, 64 built-in views) the
# worst view scores 0.9983 at 224 px and 0.9985 at 128 px with a mean of 0.9995, for a graph that
# computes every convolution in bf16 as the CPU plugin does by default. The mean still fails a graph
# whose bf16 path is broken; top-1 agreement keeps the decisions (the same gate as int8).
BF16_MIN_MEAN_COSINE = 0.999
BF16_MIN_AGREEMENT = DEFAULT_MIN_AGREEMENT
# With random weights top-1 is decided by noise-level margins (randomly initialised nets give
# nearly constant logits: ONNX int8 of mobilenetv2_100 kept cosine 0.99999 with 0 % top-1
# agreement), so agreement says nothing there; int8 must still keep the logit vector's direction.
# Measured int8 cosines with random weights: squeezenet1_1, mobilenetv2_100, efficientnet_b0 >=
# 0.9999 (ONNX, OpenVINO); an output collapsed by a wrong output scale scores 0.00-0.04 (TFLite int8
# of the latter two). 0.9 separates working-but-lossy graphs from broken ones.
INT8_RANDOM_MIN_COSINE = 0.9
# Two-sided 95 % normal quantile (scipy.stats.norm.ppf(0.975)); a constant, so parity needs no scipy.
_Z95 = 1.959963984540054


def wilson_interval(successes: int, total: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default).

    Wilson, not the normal approximation p +- z*sqrt(p(1-p)/n): agreement sits near 1, where the
    normal interval collapses to a width of 0 at 64/64 and spills past 1 just below it.
    """
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


MAX_MISS_GAPS = 16  # the manifest keeps the smallest gaps of at most this many missed views


@dataclass
class ParityFigures:
    max_abs_diff: float
    max_rel_diff: float
    min_cosine: float
    mean_cosine: float
    top1_agreement: float
    inputs: int
    # 95 % Wilson interval of top1_agreement over ``inputs`` views (None in manifests written before it)
    agreement_low: float | None = None
    agreement_high: float | None = None
    # For each view whose top-1 changed: how far apart the reference's top-1 and top-2 logits were,
    # ascending (at most MAX_MISS_GAPS). Small gaps are near ties, which any perturbation of the
    # logits flips either way; large ones are real damage. None in manifests written before it.
    miss_gaps: list[float] | None = None

    def as_dict(self) -> dict:
        def rounded(value):
            return round(value, 8) if isinstance(value, float) else value

        return {k: ([rounded(x) for x in v] if isinstance(v, list) else rounded(v)) for k, v in asdict(self).items()}

    def describe_misses(self) -> str:
        """'5 misses, fp32 top-2 gaps 0.005-0.41' or ''."""
        if not self.miss_gaps:
            return ""
        misses = round((1.0 - self.top1_agreement) * self.inputs)
        low, high = self.miss_gaps[0], self.miss_gaps[-1]
        span = f"{low:.3g}" if len(self.miss_gaps) == 1 else f"{low:.3g}-{high:.3g}"
        return f"{misses} miss{'es' if misses != 1 else ''}, fp32 top-2 logit gap {span}"


def compare(reference: np.ndarray, candidate: np.ndarray) -> ParityFigures:
    """Figures for ``candidate`` logits (N, C) against ``reference`` logits (N, C)."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    out = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    if ref.shape != out.shape:
        raise ValueError(f"artifact output shape {out.shape} does not match the model's {ref.shape}")
    if not np.isfinite(out).all():
        return ParityFigures(float("inf"), float("inf"), -1.0, -1.0, 0.0, len(ref), *wilson_interval(0, len(ref)))
    abs_diff = float(np.abs(out - ref).max())
    scale = float(np.abs(ref).max()) or 1.0
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosines = np.where(norms > 0, (ref * out).sum(axis=1) / np.maximum(norms, 1e-30), 0.0)
    missed = ref.argmax(axis=1) != out.argmax(axis=1)
    agreed = int((~missed).sum())
    top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.zeros((len(ref), 2))
    gaps = sorted(float(g) for g in (top2[:, 1] - top2[:, 0])[missed])[:MAX_MISS_GAPS]
    return ParityFigures(abs_diff, abs_diff / scale, float(cosines.min()), float(cosines.mean()), agreed / len(ref),
                         len(ref), *wilson_interval(agreed, len(ref)), miss_gaps=gaps)


@dataclass
class ParityRule:
    """The pass condition of one precision, in words for the manifest and the table."""

    precision: str
    max_rel_diff: float | None = None
    min_cosine: float | None = None
    min_mean_cosine: float | None = None
    min_agreement: float | None = None

    def check(self, figures: ParityFigures) -> str | None:
        """None when ``figures`` pass, else the reason in one line."""
        if self.max_rel_diff is not None and not figures.max_rel_diff <= self.max_rel_diff:
            return f"max relative diff {figures.max_rel_diff:.2e} > {self.max_rel_diff:.0e}"
        if self.min_cosine is not None and not figures.min_cosine >= self.min_cosine:
            return f"cosine {figures.min_cosine:.5f} < {self.min_cosine}"
        if self.min_mean_cosine is not None and not figures.mean_cosine >= self.min_mean_cosine:
            return f"mean cosine {figures.mean_cosine:.5f} < {self.min_mean_cosine}"
        if self.min_agreement is not None and not figures.top1_agreement >= self.min_agreement:
            misses = figures.describe_misses()
            return f"top-1 agreement {figures.top1_agreement:.1%} < {self.min_agreement:.0%}" + (f" ({misses})" if misses else "")
        return None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def rule_for(precision: str, real_weights: bool, min_agreement: float | None = None) -> ParityRule:
    """The parity rule of ``precision``; ``real_weights`` says whether agreement is meaningful."""
    if precision == "fp32":
        return ParityRule(precision, max_rel_diff=FP32_MAX_REL_DIFF)
    if precision == "fp16":
        return ParityRule(precision, min_cosine=FP16_MIN_COSINE)
    if precision == "bf16":
        return ParityRule(precision, min_mean_cosine=BF16_MIN_MEAN_COSINE,
                          min_agreement=BF16_MIN_AGREEMENT if real_weights else None)
    if precision == "int8":
        if real_weights:
            agreement = DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement
            return ParityRule(precision, min_agreement=agreement)
        return ParityRule(precision, min_cosine=INT8_RANDOM_MIN_COSINE)
    raise ValueError(f"no parity rule for precision {precision!r}")


# Beside manifest.json the export keeps the held-out inputs it judged parity on and the PyTorch
# logits for them, so parity can be recomputed where the artifact runs (edgecls.bench.verify).
INPUTS_SUFFIX = ".parity-inputs.npy"
REFERENCE_SUFFIX = ".reference.npy"


def save_parity_data(folder: Path, model: str, resolution: int, inputs, reference) -> dict:
    """Write the parity inputs and reference logits into an export folder (temp name, then rename);
    returns the manifest's ``parity_data``: both file names and their sha256."""
    import hashlib

    stem = f"{model}_r{resolution}"
    names = {"inputs": stem + INPUTS_SUFFIX, "reference": stem + REFERENCE_SUFFIX}
    digests = {}
    for key, array in (("inputs", inputs), ("reference", reference)):
        tmp = Path(folder) / f"{names[key]}.{os.getpid()}.tmp"  # two exports into one folder may write at once
        try:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(array, dtype=np.float32))
            tmp.replace(Path(folder) / names[key])
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        digests[names[key]] = hashlib.sha256((Path(folder) / names[key]).read_bytes()).hexdigest()
    return {**names, "sha256": digests}


__all__ = ["BF16_MIN_AGREEMENT", "BF16_MIN_MEAN_COSINE", "DEFAULT_MIN_AGREEMENT", "FP16_MIN_COSINE", "FP32_MAX_REL_DIFF", "INT8_RANDOM_MIN_COSINE",
           "ParityFigures", "ParityRule", "compare", "rule_for", "save_parity_data", "wilson_interval"]
