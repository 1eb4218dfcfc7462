"""Benchmark results in: results JSON files loaded and checked, flattened to one row per
measurement (the table's columns plus what the rules and plots need), and written as CSV.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from edgecls.errors import EdgeclsError
from edgecls.report.policy import parity_passed

SCHEMA_PREFIX = "edgecls-bench/"

COLUMNS = (
    ("model", "model"), ("device", "device"), ("runtime", "runtime"), ("format", "format"),
    ("precision", "precision"), ("threads", "threads"), ("batch", "batch"), ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"), ("mean_ms", "mean ms"), ("std_ms", "std ms"),
    ("throughput_ips", "img/s"), ("macs_m", "MMACs"), ("gflops", "GFLOP/s"), ("peak_pct", "% fp32 peak"),
    ("peak_rss_mb", "peak RSS MB"), ("size_mb", "size MB"), ("init_ms", "init ms"),
    ("first_ms", "1st inf ms"), ("runs", "runs"), ("load_1m", "load 1m"), ("parity", "parity"),
    ("accuracy", "accuracy"),
)


def load_results(paths: list[Path]) -> list[dict]:
    if not paths:
        raise EdgeclsError("no results file given: pass one or more JSON files from `edgecls bench --json`")
    loaded = []
    for path in map(Path, paths):
        if not path.is_file():
            raise EdgeclsError(f"results file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise EdgeclsError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(SCHEMA_PREFIX):
            raise EdgeclsError(f"{path} is not an edgecls benchmark results file (no '{SCHEMA_PREFIX}' schema)")
        data["_source"] = str(path)
        if data.get("devices"):  # a device pool's merged file: one results set per device, named as in the pool
            from edgecls.devices.pool import per_device

            loaded.extend({**sub, "device_name": name} for name, sub in per_device(data))
            continue
        loaded.append(data)
    return loaded


def precision_text(record: dict) -> str:
    """The artifact's precision, and what it ran in when the runtime computed in another one (a
    bf16 IR timed on a CPU without bf16: 'bf16 (ran fp32)')."""
    precision = record.get("precision") or "?"
    executed = record.get("execution_precision")
    if precision == "bf16" and executed and executed != precision:
        return f"{precision} (ran {executed})"
    return precision


def _parity_text(record: dict) -> str:
    parity = record.get("parity")
    passed = parity_passed(record)
    if passed is None:
        return "" if record.get("runtime") != "torch" else "reference"
    figures = []
    if isinstance(parity, dict):
        agreement = next((parity[k] for k in ("top1_agreement", "top1_match", "agreement")
                          if isinstance(parity.get(k), (int, float))), None)
        if agreement is not None:
            text = f"top-1 {agreement * 100 if agreement <= 1 else agreement:.0f}%"
            if isinstance(parity.get("agreement_low"), (int, float)):
                text += f" [{parity['agreement_low'] * 100:.0f}-{parity['agreement_high'] * 100:.0f}] n={parity.get('inputs')}"
            figures.append(text)
        if record.get("precision") == "bf16" and isinstance(parity.get("mean_cosine"), (int, float)):
            figures.append(f"mean cos {parity['mean_cosine']:.4f}")  # bf16's rule judges the mean
        elif isinstance(parity.get("min_cosine"), (int, float)):
            figures.append(f"cos {parity['min_cosine']:.4f}")
        elif isinstance(parity.get("max_abs_diff"), (int, float)):
            figures.append(f"max |d| {parity['max_abs_diff']:.2g}")
    mark = "pass" if passed else "FAIL"
    if record.get("weights") == "random":
        figures.append("random weights: benchmark only")
    return f"{mark} ({', '.join(figures)})" if figures else mark


def _accuracy_value(record: dict) -> float | None:
    accuracy = record.get("accuracy")
    if isinstance(accuracy, (int, float)):
        return float(accuracy)
    if isinstance(accuracy, dict):
        for key in ("top1", "top1_accuracy", "accuracy"):
            if isinstance(accuracy.get(key), (int, float)):
                return float(accuracy[key])
    return None


def _parity_metric(record: dict) -> tuple[float, str] | None:
    """One number to plot against latency: accuracy if measured, else top-1 agreement with torch."""
    accuracy = _accuracy_value(record)
    if accuracy is not None:
        return accuracy, "top-1 accuracy"
    parity = record.get("parity")
    if not isinstance(parity, dict):
        return None
    # Random weights leave logits nearly tied, so top-1 agreement says nothing there: use cosine.
    if record.get("weights") != "random":
        for key in ("top1_agreement", "top1_match", "agreement"):
            if isinstance(parity.get(key), (int, float)):
                return float(parity[key]), "top-1 agreement with PyTorch"
    if isinstance(parity.get("min_cosine"), (int, float)):
        return float(parity["min_cosine"]), "min cosine of logits vs PyTorch"
    return None


def flatten(results: list[dict]) -> list[dict]:
    """One row per measurement, the columns of the table plus what the plots and rules need."""
    rows = []
    for data in results:
        device = data.get("device", {})
        device_name = data.get("device_name") or device.get("slug") or device.get("cpu") or "unknown device"
        for record in data.get("results", []):
            latency = record.get("latency", {})
            macs = record.get("macs")
            rows.append({
                "model": record.get("model") or Path(str(record.get("target", "?"))).stem,
                "device": device_name,
                "runtime": record.get("runtime"),
                "format": record.get("format"),
                "precision": precision_text(record),
                "threads": record.get("threads"),
                "batch": record.get("batch", 1),
                "p50_ms": latency.get("p50_ms"),
                "p90_ms": latency.get("p90_ms"),
                "p99_ms": latency.get("p99_ms"),
                "mean_ms": latency.get("mean_ms"),
                "std_ms": latency.get("std_ms"),
                "throughput_ips": latency.get("throughput_ips"),
                "runs": latency.get("runs"),
                "macs_m": macs / 1e6 if macs else None,
                "gflops": record.get("gflops"),
                "peak_pct": record["peak_share"] * 100 if record.get("peak_share") else None,
                "peak_rss_mb": record["peak_rss_bytes"] / 2**20 if record.get("peak_rss_bytes") else None,
                "size_mb": record["file_bytes"] / 2**20 if record.get("file_bytes") else None,
                "init_ms": record.get("init_ms"),
                "first_ms": record.get("first_inference_ms"),
                "load_1m": record.get("load_average_1m"),
                "weights": record.get("weights"),
                "parity": _parity_text(record),
                "accuracy": _accuracy_value(record),
                "_passed": parity_passed(record),
                "_metric": _parity_metric(record),
                "_file": record.get("file"),
            })
    rows.sort(key=lambda r: (r["model"], r["device"], r["threads"] or 0, r["batch"], r["p50_ms"] or math.inf))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([key for key, _ in COLUMNS] + ["file"])
        for row in rows:
            writer.writerow([("" if row[key] is None else row[key]) for key, _ in COLUMNS] + [row["_file"] or ""])
