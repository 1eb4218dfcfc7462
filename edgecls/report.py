"""Reports from benchmark results: a Markdown table, a CSV and PNG plots.

Input is one or more results JSON files written by ``edgecls bench --json`` or ``edgecls suite
run``; files from several devices merge into one table with a device column.

The recommendation per model (and device, thread count, batch) is the fastest artifact by p50
that passed parity, with one rule on top: an int8 artifact slower than the fp32 artifact of the
same runtime is never recommended (it loses accuracy for nothing). The PyTorch eager baseline is
a reference, not a deployable artifact, so it is never recommended.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError

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


def parity_passed(record: dict) -> bool | None:
    """True/False from the export's parity check; None when nothing was checked."""
    if (record.get("device_parity") or {}).get("passed") is False:
        return False  # recomputed where it ran (bench --verify) and broke its precision's rule there
    parity = record.get("parity")
    if isinstance(parity, dict):
        for key in ("passed", "ok", "pass"):
            if isinstance(parity.get(key), bool):
                return parity[key]
    status = record.get("status")
    if status in ("ok", "passed"):
        return True
    if status in ("parity_failed", "failed", "error"):
        return False
    return None


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
            figures.append(f"top-1 {agreement * 100 if agreement <= 1 else agreement:.0f}%")
        if isinstance(parity.get("min_cosine"), (int, float)):
            figures.append(f"cos {parity['min_cosine']:.4f}")
        elif isinstance(parity.get("max_abs_diff"), (int, float)):
            figures.append(f"max |d| {parity['max_abs_diff']:.2g}")
    mark = "pass" if passed else "FAIL"
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
                "precision": record.get("precision") or "?",
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


def recommend(rows: list[dict]) -> list[dict]:
    """The recommended artifact per (model, device, threads, batch); see the module docstring."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["runtime"] == "torch" or row["p50_ms"] is None:
            continue
        groups.setdefault((row["model"], row["device"], row["threads"], row["batch"]), []).append(row)
    picks = []
    for (model, device, threads, batch), candidates in sorted(groups.items(), key=lambda kv: str(kv[0])):
        fp32 = {r["runtime"]: r["p50_ms"] for r in candidates if r["precision"] == "fp32"}
        excluded = [r for r in candidates if r["precision"] == "int8" and r["runtime"] in fp32
                    and r["p50_ms"] >= fp32[r["runtime"]]]
        allowed = [r for r in candidates if r not in excluded]
        passed = [r for r in allowed if r["_passed"] is True]
        unchecked = [r for r in allowed if r["_passed"] is None]
        pool, note = (passed, "") if passed else (unchecked, "parity not checked")
        pick = {"model": model, "device": device, "threads": threads, "batch": batch, "row": None,
                "note": note, "excluded_int8": [f"{r['runtime']} int8" for r in excluded]}
        if pool:
            pick["row"] = min(pool, key=lambda r: r["p50_ms"])
        else:
            pick["note"] = "no artifact passed parity"
        picks.append(pick)
    return picks


def summary(rows: list[dict], picks: list[dict]) -> list[dict]:
    """Per (model, device, batch): the best fp32 and the best int8 artifact at each thread count.

    "Best" is the lowest p50 among artifacts that passed parity (or were not checked); the
    PyTorch baseline is left out, as in ``recommend``. ``pick`` is the recommendation per thread count.
    """
    picked = {(p["model"], p["device"], p["threads"], p["batch"]): p for p in picks}
    groups: dict[tuple, dict] = {}
    for row in rows:
        if row["runtime"] == "torch" or row["p50_ms"] is None or row["_passed"] is False:
            continue
        if row["precision"] not in ("fp32", "int8"):
            continue
        entry = groups.setdefault((row["model"], row["device"], row["batch"]),
                                  {"model": row["model"], "device": row["device"], "batch": row["batch"],
                                   "macs_m": row["macs_m"], "best": {}, "pick": {}})
        key = (row["threads"], row["precision"])
        if key not in entry["best"] or row["p50_ms"] < entry["best"][key]["p50_ms"]:
            entry["best"][key] = row
        pick = picked.get((row["model"], row["device"], row["threads"], row["batch"]))
        if pick and pick["row"] is not None:
            entry["pick"][row["threads"]] = pick["row"]
    return [groups[key] for key in sorted(groups, key=lambda k: (k[1], groups[k]["macs_m"] or 0, k[0], k[2]))]


def summary_markdown(entries: list[dict]) -> list[str]:
    """The summary as a Markdown table: one row per model, best fp32 / int8 p50 per thread count."""
    threads = sorted({t for e in entries for t, _ in e["best"]}, key=lambda t: t or 0)
    devices = {e["device"] for e in entries}
    headers = ["model"] + (["device"] if len(devices) > 1 else []) + ["MMACs"]
    for n in threads:
        headers += [f"best fp32 ms ({n}T)", f"best int8 ms ({n}T)", f"int8 speed-up ({n}T)"]
    headers.append(f"pick ({threads[-1]}T)" if threads else "pick")
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if h in ("model", "device") or h.startswith("pick") else "---:" for h in headers) + "|"]

    def cell(row):
        return "-" if row is None else f"{_fmt(row['p50_ms'])} {row['runtime']}"

    for entry in entries:
        cells = [entry["model"]] + ([entry["device"]] if len(devices) > 1 else []) + [_fmt(entry["macs_m"])]
        for n in threads:
            fp32, int8 = entry["best"].get((n, "fp32")), entry["best"].get((n, "int8"))
            speedup = f"{fp32['p50_ms'] / int8['p50_ms']:.2f}x" if fp32 and int8 else "-"
            cells += [cell(fp32), cell(int8), speedup]
        pick = entry["pick"].get(threads[-1]) if threads else None
        cells.append("-" if pick is None else f"{pick['runtime']} {pick['precision']}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def recommendation_line(pick: dict) -> str:
    where = f"{pick['model']} on {pick['device']}, {pick['threads'] or 'default'} thread(s), batch {pick['batch']}"
    row = pick["row"]
    if row is None:
        return f"{where}: nothing to recommend ({pick['note']})"
    text = (f"{where}: **{row['runtime']} {row['precision']}** ({row['format']}) at "
            f"{row['p50_ms']:.2f} ms p50")
    if pick["note"]:
        text += f" ({pick['note']})"
    if pick["excluded_int8"]:
        text += f"; skipped {', '.join(pick['excluded_int8'])} (slower than its fp32)"
    return text


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def markdown(results: list[dict], rows: list[dict], picks: list[dict], plots: list[Path], summary_lines: list[str]) -> str:
    lines = ["# edgecls benchmark report", ""]
    lines.append("Sources: " + ", ".join(f"`{Path(r['_source']).name}`" for r in results))
    lines.append("")
    lines.append("## Devices")
    lines.append("")
    seen = set()
    for data in results:
        device = data.get("device", {})
        name = data.get("device_name") or device.get("slug")
        if name in seen:
            continue
        seen.add(name)
        versions = ", ".join(f"{k} {v}" for k, v in device.get("versions", {}).items())
        slug = f" ({device.get('slug')})" if name != device.get("slug") else ""
        lines.append(f"- **{name}**{slug}: {device.get('cpu')}, {device.get('physical_cores')} cores, "
                     f"ISA {' '.join(device.get('isa', [])) or '-'}, {device.get('os')}, Python {device.get('python')}; "
                     f"{versions}")
        lines.append(f"  - {device.get('fp32_peak_formula')}")
    lines.append("")
    lines.append("## Summary")
    lines.append("")
    lines.append("Per model: the fastest fp32 and the fastest int8 artifact that passed parity, by p50, at each "
                 "thread count (runtime named beside the time); int8 speed-up = best fp32 / best int8; pick = "
                 "the recommendation below at the highest thread count.")
    lines.append("")
    lines.extend(summary_lines)
    lines.append("")
    lines.append("## Recommendations")
    lines.append("")
    lines.append("Fastest artifact by p50 that passed parity; an int8 artifact slower than the fp32 one on "
                 "the same runtime is never recommended.")
    lines.append("")
    lines.extend(f"- {recommendation_line(p)}" for p in picks)
    lines.append("")
    lines.append("## Latency")
    lines.append("")
    headers = [title for _, title in COLUMNS]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" if key in ("model", "device", "runtime", "format", "precision", "parity")
                                else "---:" for key, _ in COLUMNS) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[key]) for key, _ in COLUMNS) + " |")
    lines.append("")
    first = results[0]
    lines.append("Method: " + "; ".join([
        f"percentiles {first.get('percentile_rule', 'nearest-rank')}",
        "std is the sample standard deviation",
        "img/s = batch / mean latency (one synchronous stream)",
        first.get("gflops_rule", "GFLOP/s = 2 x MACs x batch / p50"),
        "each measurement in a fresh process; peak RSS is that process's high-water mark",
        "load 1m is the machine's 1-minute load average when the measurement started (above the core count, "
        "other work competed for the CPU)",
    ]) + ".")
    timing = first.get("timing", {})
    if timing:
        lines.append(f"Timing: warm-up >= {timing.get('warmup_runs')} runs and >= {timing.get('warmup_seconds')} s, "
                     f"then >= {timing.get('min_runs')} runs and >= {timing.get('min_seconds')} s "
                     f"(at most {timing.get('max_seconds')} s).")
    if plots:
        lines.append("")
        lines.append("## Plots")
        lines.append("")
        lines.extend(f"![{p.stem}]({p.name})" for p in plots)
    errors = [e for data in results for e in data.get("errors", [])]
    if errors:
        lines.append("")
        lines.append("## Not measured")
        lines.append("")
        lines.extend(f"- {e.get('target')} ({e.get('runtime')}, threads {e.get('threads')}): {e.get('error')}"
                     for e in errors)
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([key for key, _ in COLUMNS] + ["file"])
        for row in rows:
            writer.writerow([("" if row[key] is None else row[key]) for key, _ in COLUMNS] + [row["_file"] or ""])


_RUNTIME_COLORS = {"onnxruntime": "tab:blue", "openvino": "tab:purple", "litert": "tab:orange", "torch": "tab:gray"}
_PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}


def _plot_rows(rows: list[dict]) -> tuple[list[dict], str]:
    """One thread count per device keeps the plots readable: the lowest measured."""
    lowest: dict[str, int] = {}
    for row in rows:
        lowest[row["device"]] = min(lowest.get(row["device"], 10**6), row["threads"] or 0)
    kept = [r for r in rows if (r["threads"] or 0) == lowest[r["device"]] and r["p50_ms"]]
    threads = sorted({r["threads"] for r in kept}, key=lambda t: t or 0)
    return kept, ", ".join(str(t or "default") for t in threads)


def _devices_axes(plt, devices: list[str], title: str):
    fig, axes = plt.subplots(1, len(devices), figsize=(6.5 * len(devices), 4.8), squeeze=False)
    fig.suptitle(title)
    return fig, dict(zip(devices, axes[0]))


def _legend(plt, fig, rows: list[dict]) -> None:
    """Colour = runtime, marker = precision."""
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=r) for r, c in _RUNTIME_COLORS.items()
               if any(row["runtime"] == r for row in rows)]
    handles += [plt.Line2D([], [], color="black", marker=m, linestyle="", label=p)
                for p, m in _PRECISION_MARKERS.items() if any(row["precision"] == p for row in rows)]
    fig.legend(handles=handles, loc="lower right", fontsize=8)


def plot_latency_vs_macs(rows: list[dict], path: Path) -> bool:
    import matplotlib.pyplot as plt

    rows, threads = _plot_rows([r for r in rows if r["macs_m"]])
    if not rows:
        return False
    devices = sorted({r["device"] for r in rows})
    fig, axes = _devices_axes(plt, devices, f"p50 latency vs MACs (threads: {threads})")
    for device, ax in axes.items():
        labelled: set[str] = set()
        # Slowest first, so each model's name sits once, above its column of points.
        for row in sorted((r for r in rows if r["device"] == device), key=lambda r: -r["p50_ms"]):
            ax.scatter(row["macs_m"], row["p50_ms"], color=_RUNTIME_COLORS.get(row["runtime"], "black"),
                       marker=_PRECISION_MARKERS.get(row["precision"], "x"), s=40, alpha=0.85)
            if row["model"] not in labelled:
                labelled.add(row["model"])
                ax.annotate(row["model"], (row["macs_m"], row["p50_ms"]), fontsize=7, alpha=0.7,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("MMACs per image")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_title(device, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    _legend(plt, fig, rows)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def int8_speedups(rows: list[dict]) -> list[dict]:
    """fp32 p50 / int8 p50 for each (model, device, runtime, threads, batch) that has both."""
    by_key: dict[tuple, dict[str, float]] = {}
    for row in rows:
        if row["p50_ms"] and row["precision"] in ("fp32", "int8"):
            key = (row["model"], row["device"], row["runtime"], row["threads"], row["batch"])
            by_key.setdefault(key, {})[row["precision"]] = row["p50_ms"]
    return [{"model": k[0], "device": k[1], "runtime": k[2], "threads": k[3], "batch": k[4],
             "speedup": v["fp32"] / v["int8"]} for k, v in sorted(by_key.items(), key=lambda kv: str(kv[0]))
            if "fp32" in v and "int8" in v]


def plot_int8_speedup(rows: list[dict], path: Path) -> bool:
    import matplotlib.pyplot as plt

    rows, threads = _plot_rows(rows)
    speedups = int8_speedups(rows)
    if not speedups:
        return False
    devices = sorted({s["device"] for s in speedups})
    fig, axes = _devices_axes(plt, devices, f"int8 speed-up over fp32, same runtime (threads: {threads})")
    for device, ax in axes.items():
        items = [s for s in speedups if s["device"] == device]
        models = sorted({s["model"] for s in items})
        runtimes = sorted({s["runtime"] for s in items})
        width = 0.8 / max(len(runtimes), 1)
        for i, runtime in enumerate(runtimes):
            xs, ys = [], []
            for j, model in enumerate(models):
                match = [s["speedup"] for s in items if s["model"] == model and s["runtime"] == runtime]
                if match:
                    xs.append(j + i * width)
                    ys.append(match[0])
            ax.bar(xs, ys, width=width, label=runtime, color=_RUNTIME_COLORS.get(runtime))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(models))])
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("fp32 p50 / int8 p50")
        ax.set_title(device, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_latency_vs_parity(rows: list[dict], path: Path) -> bool:
    import matplotlib.pyplot as plt

    rows, threads = _plot_rows([r for r in rows if r["_metric"]])
    if not rows:
        return False
    label = rows[0]["_metric"][1]
    devices = sorted({r["device"] for r in rows})
    fig, axes = _devices_axes(plt, devices, f"{label} vs p50 latency (threads: {threads})")
    rows = [r for r in rows if r["_metric"][1] == label]  # one measure per plot
    for device, ax in axes.items():
        labelled: set[str] = set()
        for row in sorted((r for r in rows if r["device"] == device), key=lambda r: r["p50_ms"]):
            ax.scatter(row["p50_ms"], row["_metric"][0], color=_RUNTIME_COLORS.get(row["runtime"], "black"),
                       marker=_PRECISION_MARKERS.get(row["precision"], "x"), s=40)
            if row["model"] not in labelled:
                labelled.add(row["model"])
                ax.annotate(row["model"], (row["p50_ms"], row["_metric"][0]), fontsize=7, alpha=0.7,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency (ms)")
        ax.set_ylabel(label)
        ax.set_title(device, fontsize=9)
        ax.grid(True, alpha=0.3)
    _legend(plt, fig, rows)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(paths: list[Path], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """Write report.md, results.csv and the PNG plots into ``out_dir``; returns what was written."""
    results = load_results(paths)
    rows = flatten(results)
    if not rows:
        raise EdgeclsError("the results files hold no measurement to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plot_files: list[Path] = []
    if plots:
        try:
            import matplotlib

            matplotlib.use("Agg")  # files only, never a window
        except ImportError:
            plots = False
    if plots:
        for name, plot in (("latency_vs_macs", plot_latency_vs_macs), ("int8_speedup", plot_int8_speedup),
                           ("latency_vs_parity", plot_latency_vs_parity)):
            path = out_dir / f"{name}.png"
            if plot(rows, path):
                plot_files.append(path)
                written[name] = path
    picks = recommend(rows)
    summary_lines = summary_markdown(summary(rows, picks))
    (out_dir / "report.md").write_text(markdown(results, rows, picks, plot_files, summary_lines))
    written["markdown"] = out_dir / "report.md"
    # The summary table alone, for pasting into a README or a PR.
    (out_dir / "summary.md").write_text("\n".join(summary_lines) + "\n")
    written["summary"] = out_dir / "summary.md"
    write_csv(rows, out_dir / "results.csv")
    written["csv"] = out_dir / "results.csv"
    return written
