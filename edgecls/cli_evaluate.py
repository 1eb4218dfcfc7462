"""`edgecls evaluate` and `edgecls predict`: typer command functions (edgecls.cli registers them).

Heavy imports stay inside the functions: for artifacts both commands run without torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(width=160, stderr=stderr)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _sides(text: str | None) -> list[int] | None:
    from edgecls.errors import InvalidArgumentError

    if not text:
        return None
    try:
        sides = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise InvalidArgumentError(f"--resolution takes integers like 224 or 160,192,224, got {text!r}") from None
    return sides or None


def evaluate(
    targets: List[str] = typer.Argument(..., help="model names, artifact files or export folders"),
    data: Path = typer.Option(..., "--data", help="image folder (one subfolder per class) or CSV of path,label"),
    weights: Optional[str] = typer.Option(None, "--weights", help="checkpoint of a model name (or of an export's model)"),
    pretrained: bool = typer.Option(False, "--pretrained", help="the model's built-in weights"),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", help="outputs of a model name (default: the checkpoint's classes, or 1000)"),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r",
                                             help="input side(s) for a model name: 224, or a sweep 160,192,224"),
    batch: int = typer.Option(32, "--batch", help="images per inference (artifacts with a static batch use theirs)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="runtime threads (default: the runtime's)"),
    out: Path = typer.Option(Path("evaluation"), "--out", help="folder for evaluation.json, confusion matrices, plots"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the results JSON here"),
    no_plots: bool = typer.Option(False, "--no-plots", help="skip the PNG heatmaps and reliability diagrams"),
    no_latency: bool = typer.Option(False, "--no-latency",
                                    help="a --resolution sweep skips timing each input side (accuracy only)"),
) -> None:
    """Accuracy on labeled data: top-1/top-5, per-class metrics, confusion matrix, calibration, agreement."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from edgecls.evaluate.run import RESULTS_NAME, evaluate as run_evaluate

    sides = _sides(resolution)
    err = _console(stderr=True)
    # The bar starts once the data and targets are known to be good: a user error prints one line only.
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, transient=False)
    task = progress.add_task("evaluating", total=None)

    def start(total: int) -> None:
        progress.update(task, total=total)
        progress.start()

    def advance(names: str, n: int) -> None:
        progress.update(task, description=names[:60], advance=n)

    try:
        report = run_evaluate(targets, data, weights=weights, pretrained=pretrained, num_classes=num_classes,
                              resolution=sides, batch=batch, threads=threads, out=out, plots=not no_plots, progress=advance,
                              on_start=start, latency=not no_latency)
    finally:
        progress.stop()
    for warning in report["warnings"]:
        err.print(f"[yellow]warning: {warning}[/yellow]")
    info = report["data"]
    console = _console()
    table = Table(title=f"{info['path']}: {info['evaluated']} images, {len(info['classes'])} classes"
                        + (f", {len(info['corrupt'])} corrupt skipped" if info["corrupt"] else ""))
    for column in ("target", "prec", "top-1 %", "top-5 %", "bal. acc %", "macro F1", "ECE", "agree %", "Δ top-1", "flipped"):
        table.add_column(column, no_wrap=column != "target", overflow="fold", justify="left" if column == "target" else "right")
    for record in report["results"]:
        m, vs = record["metrics"], record["vs_reference"]
        table.add_row(Path(record["label"]).name if record["file"] else record["label"], record["precision"] or "-",
                      _pct(m["top1"]), _pct(m["top5"]), _pct(m["balanced_accuracy"]), f"{m['macro_f1']:.3f}", f"{m['ece']:.3f}",
                      _pct(vs["agreement"]) if vs else "-", f"{100 * vs['top1_change']:+.1f}" if vs else "-",
                      str(vs["flipped"]) if vs else "-")
    console.print(table)
    sweep = report.get("sweep")
    if sweep:
        console.print(sweep_table(sweep))
    console.print(f"results, confusion matrices and plots in {out}/ ({RESULTS_NAME})")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))


def sweep_table(sweep: dict):
    """Accuracy and latency per input side of a --resolution sweep (the rows of resolution_sweep.csv)."""
    from rich.table import Table

    latency = sweep.get("latency")
    title = "resolution sweep" + (f": p50 latency at batch 1 on {latency['cpu']} (this machine, as it was loaded)"
                                  if latency else " (latency not measured)")
    table = Table(title=title)
    for column in ("model", "side", "top-1 %", "top-5 %", "bal. acc %", "p50 ms", "p90 ms", "runs"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in sweep["rows"]:
        table.add_row(row["model"] + (f" ({Path(row['weights']).name})" if row["weights"] else ""), str(row["resolution"]),
                      _pct(row["top1"]), _pct(row["top5"]), _pct(row["balanced_accuracy"]),
                      "-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}",
                      "-" if row["p90_ms"] is None else f"{row['p90_ms']:.2f}", "-" if row["runs"] is None else str(row["runs"]))
    return table


def predict(
    target: str = typer.Argument(..., help="artifact file (runs without torch) or model name"),
    images: List[str] = typer.Argument(..., help="image files or folders"),
    top_k: int = typer.Option(5, "--top-k", "-k", help="classes per image"),
    weights: Optional[str] = typer.Option(None, "--weights", help="checkpoint of a model name"),
    pretrained: bool = typer.Option(False, "--pretrained", help="the model's built-in weights"),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", help="outputs of a model name"),
    threads: Optional[int] = typer.Option(None, "--threads", help="runtime threads"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Top-k classes of images, with the preprocessing and labels the artifact itself records."""
    from edgecls.evaluate.predict import predict as run_predict

    result = run_predict(target, images, top_k=top_k, weights=weights, pretrained=pretrained,
                         num_classes=num_classes, threads=threads)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console = _console()
    for warning in result["warnings"]:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    for item in result["predictions"]:
        tops = ", ".join(f"{t['label']} {100 * t['probability']:.1f}%" for t in item["top"])
        console.print(f"[bold]{item['image']}[/bold]: {tops}")
    for path in result["corrupt"]:
        console.print(f"[red]{path}: not a readable image, skipped[/red]")


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate)
    app.command(name="predict")(predict)
