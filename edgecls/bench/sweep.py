"""Scaling sweeps: how cost grows with batch size and thread count.

``edgecls bench --batch 1,2,4,8 --threads 1,2`` measures every combination (each in its own
process, as any measurement); these helpers parse the lists, merge the per-batch result sets into
one results file, and draw throughput against batch and latency against threads.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from edgecls.errors import InvalidArgumentError


def parse_positive_ints(text, message: str) -> list[int]:
    """'1,2' (or an int, or a list) -> [1, 2]; anything that is not a positive integer -> ``message``."""
    parts = text if isinstance(text, list) else [text] if isinstance(text, int) and not isinstance(text, bool) \
        else [p for p in str(text).replace(" ", "").split(",") if p]
    values = []
    for part in parts:
        try:
            value = int(part)
        except (TypeError, ValueError):
            raise InvalidArgumentError(message) from None
        if value < 1:
            raise InvalidArgumentError(message)
        values.append(value)
    if not values:
        raise InvalidArgumentError(message)
    return values


def parse_batches(text: str | int | None) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8] (order kept, duplicates dropped); None -> [1]."""
    if text is None or text == "":
        return [1]
    values = parse_positive_ints(text, f"--batch takes positive integers like '1,2,4,8', got {text!r}")
    return list(dict.fromkeys(values))


def merge_results(per_batch: list[dict]) -> dict:
    """One results document from one run per batch size (same device and timing)."""
    if not per_batch:
        raise ValueError("nothing to merge")
    merged = dict(per_batch[0])
    merged["results"] = [r for part in per_batch for r in part["results"]]
    merged["errors"] = [{**e, "batch": part.get("batch", 1)} for part in per_batch for e in part["errors"]]
    batches = [part.get("batch", 1) for part in per_batch]
    merged["batch"] = batches[0] if len(batches) == 1 else batches
    return merged


def _series_key(record: dict) -> str:
    name = Path(record["target"]).name if record.get("file") else str(record["target"])
    return f"{name} ({record['runtime']})"


def plot_throughput_vs_batch(records: list[dict], path: Path) -> bool:
    """Images per second against batch size, one line per artifact and thread count."""
    series: dict[tuple[str, object], list[tuple[int, float]]] = defaultdict(list)
    for r in records:
        series[(_series_key(r), r.get("threads"))].append((int(r.get("batch") or 1), r["latency"]["throughput_ips"]))
    series = {k: sorted(v) for k, v in series.items() if len({b for b, _ in v}) > 1}
    if not series:
        return False
    return _line_plot(series, path, "batch size", "throughput (images/s)", "Throughput vs batch",
                      lambda key: f"{key[0]}, {key[1] or 'default'} thr", log_x=True)


def plot_latency_vs_threads(records: list[dict], path: Path) -> bool:
    """p50 latency against thread count, one line per artifact and batch size."""
    series: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
    for r in records:
        if r.get("threads"):
            series[(_series_key(r), int(r.get("batch") or 1))].append((int(r["threads"]), r["latency"]["p50_ms"]))
    series = {k: sorted(v) for k, v in series.items() if len({t for t, _ in v}) > 1}
    if not series:
        return False
    return _line_plot(series, path, "threads", "p50 latency (ms)", "Latency vs threads",
                      lambda key: f"{key[0]}, batch {key[1]}", log_x=False)


def _line_plot(series: dict, path: Path, xlabel: str, ylabel: str, title: str, label, log_x: bool) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for key, points in series.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", label=label(key))
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({x for points in series.values() for x, _ in points}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
