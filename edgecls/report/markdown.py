"""report.md and summary.md: the Markdown text of a report from flattened rows and picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecls.report.rows import COLUMNS


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
