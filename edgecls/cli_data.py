"""`edgecls data`, `train`, `explain` and `drift`: typer command functions over the user's own data.

edgecls.cli registers them with ``cli_data.register(app)``; heavy imports stay inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)


def data(
    folder: Path = typer.Argument(..., help="image folder (one subfolder per class) or CSV of path,label"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write data_report.json, report.md and plots here"),
) -> None:
    """Class counts, imbalance, image sizes and aspect ratios, duplicates, corrupt files, suggested `train` settings."""
    from edgecls.datareport import analyse, print_summary, write_report

    console = _console()
    report = analyse(folder, show_progress=True)
    print_summary(report, console)
    if out is not None:
        console.print(f"report: {write_report(report, out)}")


def train(
    name: str = typer.Argument(..., help="model name (see `edgecls models`)"),
    data: Path = typer.Option(..., "--data", help="training images: a folder with one subfolder per class, or a CSV"),
    out: Path = typer.Option(..., "--out", help="folder for model.safetensors, model.json and the report"),
    pretrained: bool = typer.Option(False, "--pretrained", help="start from the model's built-in ImageNet weights"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="start from this checkpoint"),
    val: Optional[Path] = typer.Option(None, "--val", help="validation images (default: a stratified split of --data)"),
    val_split: float = typer.Option(0.2, "--val-split", help="fraction of --data held out, per class"),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="input side (default: the model's)"),
    epochs: int = typer.Option(30, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate (default: 1e-3 adamw, 1e-2 sgd/sam)"),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | sgd | sam (sharpness-aware, for attention models)"),
    loss: str = typer.Option("ce", "--loss", help="ce | focal | label-smoothing"),
    class_weights: str = typer.Option("none", "--class-weights", help="none | inverse | effective-number"),
    sampler: str = typer.Option("none", "--sampler", help="none | oversample (draw every class equally often)"),
    augment: str = typer.Option("light", "--augment", help="none | light | strong"),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="train the head only"),
    head_hidden: Optional[int] = typer.Option(None, "--head-hidden", help="a hidden layer of N units before the classifier"),
    patience: int = typer.Option(5, "--patience", help="early stop after N epochs without a better balanced accuracy"),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads"),
) -> None:
    """Fine-tune a model on your classes; writes a checkpoint that export, evaluate and predict load."""
    from edgecls.train import TrainConfig, train as run_train

    console = _console()
    config = TrainConfig(model=name, data=data, out=out, pretrained=pretrained, weights=weights, val=val,
                         val_split=val_split, resolution=resolution, epochs=epochs, batch_size=batch_size, lr=lr,
                         optimizer=optimizer, loss=loss, class_weights=class_weights, sampler=sampler, augment=augment,
                         freeze_backbone=freeze_backbone, head_hidden=head_hidden, patience=patience, seed=seed,
                         threads=threads)
    from edgecls.cli_export import progress_log

    result = run_train(config, log=progress_log(console))
    best = result.best
    console.print(f"kept epoch {result.best_epoch}: validation balanced accuracy {best['val_balanced_accuracy']:.4f}, "
                  f"accuracy {best['val_accuracy']:.4f}")
    console.print(f"checkpoint: {result.checkpoint}")
    console.print(f"report: {result.report}")
    console.print(f"export it: edgecls export {name} --weights {result.checkpoint}")


def explain(
    target: str = typer.Argument(..., help="model name, or an exported artifact (.onnx, .xml, .tflite)"),
    images: List[Path] = typer.Argument(..., help="image files"),
    class_index: Optional[int] = typer.Option(None, "--class", help="class index to explain (default: the top-1)"),
    method: str = typer.Option("gradcam", "--method", help="gradcam | gradcam++ | scorecam (PyTorch models)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="checkpoint of the model (or of the artifact's model)"),
    pretrained: bool = typer.Option(False, "--pretrained", help="the model's built-in weights"),
    reference: Optional[str] = typer.Option(None, "--reference", help="for an artifact: the model name to compare with "
                                            "(default: the artifact's manifest)"),
    out: Path = typer.Option(Path("explain"), "--out", help="folder for the overlay PNGs and explain.json"),
) -> None:
    """Class activation maps: where the network looks (and whether an exported artifact looks there too)."""
    from edgecls.explain import explain as run_explain

    console = _console()
    result = run_explain(target, images, class_index=class_index, method=method, weights=weights,
                         pretrained=pretrained, reference=reference, out=out)
    for item in result["images"]:
        line = f"{item['image']}: class {item['class']} ({item['label']}) -> {item['overlay']}"
        if item.get("similarity") is not None:
            line += f" | similarity to PyTorch {item['similarity']['pearson']:.3f} (Pearson)"
        console.print(line)
    console.print(f"results: {result['json']}")


def drift(
    reference: Path = typer.Option(..., "--reference", help="images the model was trained / calibrated on"),
    current: Path = typer.Option(..., "--current", help="images seen now"),
    model: Optional[str] = typer.Argument(None, help="model name: adds embedding, prediction and confidence drift"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="checkpoint of MODEL"),
    pretrained: bool = typer.Option(False, "--pretrained", help="MODEL's built-in weights"),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="input side (default: the checkpoint's or model's)"),
    permutations: int = typer.Option(500, "--permutations", help="permutations for the MMD p-value"),
    alpha: float = typer.Option(0.01, "--alpha", help="significance level of the verdict"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("drift"), "--out", help="folder for drift.json, report.md and plots"),
) -> None:
    """Has the data moved? Input statistics, and with a model its embeddings, predictions and confidence."""
    from edgecls.drift import detect_drift

    console = _console()
    report = detect_drift(reference, current, model=model, weights=weights, pretrained=pretrained,
                          resolution=resolution, permutations=permutations, alpha=alpha, seed=seed, out=out)
    console.print(report["verdict"])
    if report.get("hint"):
        console.print(f"[yellow]{report['hint']}[/yellow]")
    console.print(f"report: {report['report']}")


def register(app: typer.Typer) -> None:
    for command in (data, train, explain, drift):
        app.command(name=command.__name__)(command)
