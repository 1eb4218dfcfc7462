"""The report's PNG plots (matplotlib, Agg): latency vs MACs, int8 speed-up, latency vs parity.

Each returns False when the rows hold nothing to plot, so the report lists only real files.
"""

from __future__ import annotations

from pathlib import Path

from edgecls.report.policy import int8_speedups


_RUNTIME_COLORS = {"onnxruntime": "tab:blue", "openvino": "tab:purple", "litert": "tab:orange", "torch": "tab:gray"}
_PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "bf16": "D", "int8": "^"}


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
