"""Benchmark rows joined with evaluation results: the fastest artifact within an accuracy budget.

``edgecls report`` takes evaluation files (``evaluation.json`` of ``edgecls evaluate``) beside the
benchmark results. Each benchmarked artifact whose file was evaluated gets its measured top-1, its
top-1 change against its reference (PyTorch, or the fp32 artifact of its format) and its
agreement with it. The budget rule then picks, per model, device, thread count and batch, the
fastest artifact whose top-1 fell by at most ``max_drop`` (points of top-1, as a fraction).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from edgecls.errors import EdgeclsError

EVAL_SCHEMA_PREFIX = "edgecls-eval/"
DEFAULT_MAX_DROP = 0.01  # one point of top-1


def _schema(path: Path) -> str:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return ""
    return str(data.get("schema", "")) if isinstance(data, dict) else ""


def split_result_paths(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(benchmark results files, evaluation files) among what the user passed."""
    bench, evals = [], []
    for path in map(Path, paths):
        (evals if path.is_file() and _schema(path).startswith(EVAL_SCHEMA_PREFIX) else bench).append(path)
    return bench, evals


def load_evaluations(paths: Sequence[Path]) -> list[dict]:
    out = []
    for path in map(Path, paths):
        data = json.loads(path.read_text())
        if not str(data.get("schema", "")).startswith(EVAL_SCHEMA_PREFIX):
            raise EdgeclsError(f"{path} is not an edgecls evaluation file (no '{EVAL_SCHEMA_PREFIX}' schema)")
        data["_source"] = str(path)
        out.append(data)
    return out


def _key(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


def apply_evaluations(rows: list[dict], evaluations: list[dict]) -> int:
    """Fill ``accuracy``, ``top1_drop`` and ``agreement`` of each row whose artifact was evaluated.

    Rows match by the artifact's resolved path, else by file name and model; the PyTorch baseline
    matches the evaluation's PyTorch record of the same model. Returns how many rows matched.
    """
    by_path, by_name, torch_by_model = {}, {}, {}
    for data in evaluations:
        for record in data.get("results", []):
            record = {**record, "_data": data["data"].get("path")}
            if record.get("file"):
                by_path[_key(record["file"])] = record
                by_name[(Path(record["file"]).name, record.get("model"))] = record
            elif record.get("format") == "torch":
                torch_by_model.setdefault(record.get("model"), record)
    matched = 0
    for row in rows:
        if row.get("runtime") == "torch":
            record = torch_by_model.get(row["model"])
        else:
            record = by_path.get(_key(row.get("_file"))) or by_name.get((Path(str(row.get("_file"))).name, row["model"]))
        if record is None:
            continue
        matched += 1
        vs = record.get("vs_reference") or {}
        row["accuracy"] = record["metrics"]["top1"]
        row["top5"] = record["metrics"]["top5"]
        row["agreement"] = vs.get("agreement")
        row["top1_drop"] = -vs["top1_change"] if "top1_change" in vs else (0.0 if row.get("runtime") == "torch" else None)
        row["eval_data"] = record["_data"]
        row["per_class_change"] = vs.get("per_class")
        row["accuracy_source"] = "measured"
        row["_metric"] = (row["accuracy"], "top-1 accuracy")  # the latency-vs-accuracy plot uses measured top-1
    return matched


def _published_top1(model: str) -> float | None:
    try:
        from edgecls.models.registry import get_model_info

        top1 = get_model_info(model).top1
    except (ImportError, EdgeclsError):  # the registry's family modules need torch
        return None
    return top1 / 100 if top1 else None


def apply_published(rows: list[dict]) -> int:
    """Rows with built-in weights and no evaluation: an estimated top-1, labelled "published".

    The estimate is the registry's published top-1 of the reference weights minus the artifact's
    measured top-1 disagreement with PyTorch on the parity views (every flipped decision counted
    as a loss, so it errs low). Other weights (random, a user's checkpoint) have no published
    figure. Returns how many rows got one.
    """
    done = 0
    for row in rows:
        if row.get("accuracy") is not None or row.get("weights") != "pretrained":
            continue
        top1 = _published_top1(row["model"])
        if top1 is None:
            continue
        metric = row.get("_metric")
        if row.get("runtime") == "torch":
            agreement = 1.0
        elif metric and metric[1].startswith("top-1 agreement"):
            agreement = metric[0]
        else:
            continue
        row["accuracy_estimate"] = top1 - (1.0 - agreement)
        row["accuracy_source"] = "published"
        done += 1
    return done


def recommend_within_budget(rows: list[dict], max_drop: float = DEFAULT_MAX_DROP) -> list[dict]:
    """Per (model, device, threads, batch) with evaluations: the fastest artifact within ``max_drop``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("runtime") == "torch" or row.get("p50_ms") is None or row.get("top1_drop") is None:
            continue
        groups.setdefault((row["model"], row["device"], row["threads"], row["batch"]), []).append(row)
    picks = []
    for (model, device, threads, batch), candidates in sorted(groups.items(), key=lambda kv: str(kv[0])):
        within = [r for r in candidates if r["top1_drop"] <= max_drop + 1e-12 and r.get("_passed") is not False]
        pick = {"model": model, "device": device, "threads": threads, "batch": batch, "max_drop": max_drop,
                "row": min(within, key=lambda r: r["p50_ms"]) if within else None,
                "over_budget": [f"{r['runtime']} {r['precision']} (-{100 * r['top1_drop']:.1f})" for r in candidates
                                if r not in within]}
        picks.append(pick)
    return picks


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both latency (lower) and accuracy (higher), by latency."""
    front, best = [], -math.inf
    for latency, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            front.append((latency, accuracy))
            best = accuracy
    return front


def plot_pareto(rows: list[dict], path: Path) -> bool:
    """Latency (p50) against measured top-1, one panel per thread count, the Pareto front drawn."""
    def top1(r: dict) -> float | None:
        return r["accuracy"] if r.get("accuracy") is not None else r.get("accuracy_estimate")

    points = [r for r in rows if top1(r) is not None and r.get("p50_ms")]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"onnxruntime": "tab:blue", "openvino": "tab:purple", "litert": "tab:orange", "torch": "tab:gray"}
    markers = {"fp32": "o", "fp16": "s", "bf16": "D", "int8": "^"}
    threads = sorted({r["threads"] for r in points}, key=lambda t: t or 0)
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4.8), squeeze=False)
    for ax, n in zip(axes[0], threads):
        group = [r for r in points if r["threads"] == n]
        for r in group:
            color = colors.get(r["runtime"], "black")
            measured = r.get("accuracy") is not None
            ax.scatter(r["p50_ms"], 100 * top1(r), marker=markers.get(r["precision"], "x"), s=60, zorder=3,
                       color=color if measured else "none", edgecolors=color)
            ax.annotate(f"{r['model']} {r['runtime']} {r['precision']}", (r["p50_ms"], 100 * top1(r)),
                        fontsize=7, xytext=(4, 3), textcoords="offset points")
        front = pareto_front([(r["p50_ms"], 100 * top1(r)) for r in group])
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="green", alpha=0.6,
                label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency (ms, log)")
        ax.set_ylabel("top-1 % (filled: measured by evaluate; hollow: published estimate)")
        ax.set_title(f"{n or 'default'} thread(s)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("latency vs measured accuracy (up and left is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def budget_markdown(rows: list[dict], picks: list[dict]) -> list[str]:
    """The accuracy section of report.md: measured top-1 per artifact, then the budget picks."""
    lines = _published_markdown(rows)
    evaluated = [r for r in rows if r.get("accuracy") is not None]
    if not evaluated:
        return lines
    lines += ["", "## Accuracy (edgecls evaluate)", "",
             "| model | runtime | precision | threads | p50 ms | top-1 % | change vs reference | agreement % |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in evaluated:
        drop = "-" if r.get("top1_drop") is None else f"{-100 * r['top1_drop']:+.1f}"
        agreement = "-" if r.get("agreement") is None else f"{100 * r['agreement']:.1f}"
        lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['threads'] or '-'} | "
                     f"{r['p50_ms']:.2f} | {100 * r['accuracy']:.1f} | {drop} | {agreement} |")
    if picks:
        budget = picks[0]["max_drop"]
        lines += ["", f"Fastest artifact within {100 * budget:.1f} points of top-1 of its reference:", ""]
        for pick in picks:
            row = pick["row"]
            where = f"{pick['model']} on {pick['device']}, {pick['threads'] or 'default'} thread(s)"
            if row is None:
                lines.append(f"- {where}: no evaluated artifact within the budget")
            else:
                lines.append(f"- {where}: **{row['runtime']} {row['precision']}** ({row['p50_ms']:.2f} ms, top-1 "
                             f"{100 * row['accuracy']:.1f} %, change {-100 * row['top1_drop']:+.1f})"
                             + (f"; over budget: {', '.join(pick['over_budget'])}" if pick["over_budget"] else ""))
    return lines


def _published_markdown(rows: list[dict]) -> list[str]:
    estimated = [r for r in rows if r.get("accuracy_source") == "published" and r.get("p50_ms")]
    if not estimated:
        return []
    lines = ["", "## Estimated top-1 (published)", "",
             "No evaluation for these artifacts: published ImageNet top-1 of the reference weights minus the "
             "artifact's top-1 disagreement with PyTorch on the parity views (built-in weights only), by latency:", "",
             "| model | device | threads | runtime | precision | p50 ms | est. top-1 % (published) |",
             "|---|---|---:|---|---|---:|---:|"]
    for r in sorted(estimated, key=lambda r: (r["device"], r["threads"] or 0, r["p50_ms"])):
        lines.append(f"| {r['model']} | {r['device']} | {r['threads'] or '-'} | {r['runtime']} | {r['precision']} | "
                     f"{r['p50_ms']:.2f} | {100 * r['accuracy_estimate']:.1f} |")
    return lines


def latency_markdown(rows: list[dict], latency_ms: float | None) -> list[str]:
    if latency_ms is None:
        return []
    lines = ["", f"## Most accurate artifact within {latency_ms:g} ms (p50)", ""]
    picks = best_within_latency(rows, latency_ms)
    for pick in picks:
        r = pick["row"]
        accuracy = r["accuracy"] if r.get("accuracy") is not None else r["accuracy_estimate"]
        lines.append(f"- {pick['device']}, {pick['threads'] or 'default'} thread(s): **{r['model']} {r['runtime']} "
                     f"{r['precision']}** ({r['p50_ms']:.2f} ms, top-1 {100 * accuracy:.1f} % "
                     f"{r.get('accuracy_source', 'measured')})")
    return lines + ([] if picks else ["- no artifact with a known accuracy is that fast"])


def best_within_latency(rows: list[dict], latency_ms: float) -> list[dict]:
    """Per device and thread count: the most accurate deployable artifact (measured, else published estimate)
    whose p50 is at most ``latency_ms``: which model answers a latency budget across the zoo."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        accuracy = row.get("accuracy") if row.get("accuracy") is not None else row.get("accuracy_estimate")
        if row.get("runtime") == "torch" or accuracy is None or not row.get("p50_ms") or row.get("_passed") is False:
            continue
        if row["p50_ms"] <= latency_ms:
            groups.setdefault((row["device"], row["threads"]), []).append((accuracy, -row["p50_ms"], row))
    return [{"device": d, "threads": t, "latency_ms": latency_ms, "row": max(c, key=lambda x: x[:2])[2]}
            for (d, t), c in sorted(groups.items(), key=lambda kv: str(kv[0]))]


__all__ = ["DEFAULT_MAX_DROP", "apply_evaluations", "apply_published", "best_within_latency", "latency_markdown", "budget_markdown", "load_evaluations", "pareto_front",
           "plot_pareto", "recommend_within_budget", "split_result_paths"]
