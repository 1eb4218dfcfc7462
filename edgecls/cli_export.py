"""`edgecls export` and `edgecls demo`: typer command functions (edgecls.cli registers them).

Heavy imports stay inside the functions so `edgecls --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

DEMO_MODEL = "tf_efficientnet_lite0"
DEMO_PHOTO = "chelsea"
DEMO_OUT = Path("out/demo")


def _console():
    from rich.console import Console

    console = Console()
    # Piped to a file (make demo | tee): no terminal width to respect, so do not wrap file names.
    return console if console.is_terminal else Console(width=140)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def agreement_text(parity: dict) -> str:
    """Top-1 agreement with its 95 % Wilson interval and sample size: '96.9% [89.3-99.1] n=64'."""
    agreement = parity.get("top1_agreement")
    if agreement is None:
        return "-"
    text = f"{agreement:.1%}"
    if parity.get("agreement_low") is not None:
        text += f" [{parity['agreement_low'] * 100:.1f}-{parity['agreement_high'] * 100:.1f}]"
    return text + (f" n={parity['inputs']}" if parity.get("inputs") else "")


def budget_lines(artifacts: list[dict]) -> list[str]:
    """One line per accuracy-budgeted int8 artifact: what stayed float and what it cost in speed."""
    lines = []
    for entry in artifacts:
        budget = entry.get("accuracy_budget")
        if not budget:
            continue
        latency = budget.get("latency") or {}
        goal = budget["budget"]
        lines.append(
            f"{entry['format']} int8 budget ({goal['kind']} >= {goal['goal']:.1%} on {goal['images']} tuning images): "
            f"{len(budget['float_layers'])}/{budget.get('compute_layers', '?')} layers float, tuning {budget['metric']:.1%}"
            + (f", {latency['speedup_vs_fp32']:.2f}x faster than fp32 ({latency['fp32_ms']:.1f} -> {latency['int8_ms']:.1f} ms,"
               f" {latency['latency_cost']:.2f}x the all-int8 latency)" if latency else "")
            + ("" if budget.get("met") else " [budget not reached]"))
    return lines


def results_table(artifacts: list[dict], title: str = "export"):
    """A rich table: one row per artifact, pass/fail with parity figures and the reason."""
    from rich.table import Table

    from edgecls.manifest import UNVERIFIED

    table = Table(title=title)
    # Figures never wrap; the file name and the reason fold when the terminal is narrow.
    for column in ("format", "prec", "status", "MB", "rel diff", "cosine", "top-1 [95% CI] n", "s"):
        table.add_column(column, no_wrap=True)
    table.add_column("file / reason", overflow="fold", ratio=1)
    for entry in artifacts:
        parity = entry.get("parity") or {}
        passed = entry["status"] == "passed"
        unverified = entry["status"] == UNVERIFIED
        size = entry.get("size_bytes")  # the model's files: OpenVINO's .xml + .bin, NCNN's .param + .bin
        executed = entry.get("execution_precision")
        table.add_row(
            entry["format"],
            # a float artifact the runtime computed in another precision (bf16 falling back to fp32) says so
            entry["precision"] + (f"\n[yellow]ran {executed}[/yellow]" if executed and executed != entry["precision"]
                                  and entry["precision"] in ("fp32", "bf16") else ""),
            ("[green]passed[/green]" if passed else "[yellow]unverified[/yellow]" if unverified else "[red]failed[/red]")
            + ("\n[yellow]benchmark only[/yellow]" if entry.get("benchmark_only") else ""),
            _fmt(size / 1e6 if size else None, ".2f"),
            _fmt(parity.get("max_rel_diff"), ".1e"),
            # the worst view's cosine, or the mean where the rule judges the mean (bf16)
            (_fmt(parity.get("mean_cosine"), ".5f") + " mean") if "min_mean_cosine" in (entry.get("parity_rule") or {})
            and parity.get("mean_cosine") is not None else _fmt(parity.get("min_cosine"), ".5f"),
            agreement_text(parity),
            _fmt((entry.get("seconds") or {}).get("total"), ".0f"),
            entry.get("file") if passed
            else f"{entry.get('file')} [yellow]({entry['status']}: {entry.get('unverified_reason')})[/yellow]" if unverified
            else f"[red]{entry.get('error') or 'failed'}[/red]",
        )
    return table


def progress_log(console):
    """The ``log`` callback of export and train: warnings in yellow, progress dimmed."""
    def log(message: str) -> None:
        style = "yellow" if message.startswith("warning") else "dim"
        console.print(f"[{style}]{message}[/{style}]", highlight=False)

    return log


def export(
    name: str = typer.Argument(..., help="Model name or alias (see `edgecls models`)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Checkpoint file (.pth/.pt/.safetensors)."),
    pretrained: bool = typer.Option(False, "--pretrained",
                                    help="Require the model's built-in weights (used by default where a model has them)."),
    random_weights: bool = typer.Option(False, "--random-weights",
                                        help="Random weights even where built-in ones exist (artifacts are benchmark only)."),
    formats: Optional[str] = typer.Option(None, "--formats", help="Comma-separated: onnx,openvino,tflite,executorch,ncnn,coreml (default: all)."),
    int8: bool = typer.Option(False, "--int8", help="Also build int8 artifacts (static quantization)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also build fp16 artifacts."),
    bf16: bool = typer.Option(False, "--bf16", help="Also build bf16 artifacts (OpenVINO: fp32 IR run with bf16 "
                                                     "arithmetic; verified only on CPUs with AVX512_BF16 / AMX)."),
    calib: str = typer.Option(
        "auto", "--calib",
        help="int8 calibration and parity images: a folder, 'builtin' (ImageNet photos), 'checkpoint' (a `train` "
             "checkpoint's own training/validation split) or 'auto' (checkpoint data when --weights records it, else builtin)."),
    calib_size: int = typer.Option(100, "--calib-size", help="Number of calibration images."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Input side (default: the model's)."),
    batch: int = typer.Option(1, "--batch", help="Static batch size."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Batch dimension left dynamic."),
    nhwc: bool = typer.Option(False, "--nhwc", help="Artifacts take channels-last (N, H, W, C) input."),
    input_type: str = typer.Option(
        "float32", "--input-type", help="float32 (normalised input) or uint8 (RGB bytes 0-255, normalisation in the graph)."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (17 or newer)."),
    target: Optional[str] = typer.Option(None, "--target", help="Target profile: x86-avx2, x86-vnni, arm64 or a .toml."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: out/NAME)."),
    min_agreement: Optional[float] = typer.Option(
        None, "--min-agreement",
        help="int8 must keep this top-1 agreement with fp32 (default gate 0.95); layers go back to float until it does."),
    max_drop: Optional[float] = typer.Option(
        None, "--max-drop", help="int8 may lose at most P top-1 points on the labeled --val data."),
    val: Optional[Path] = typer.Option(None, "--val", help="Labeled data for --max-drop (one subfolder per class, or CSV)."),
    sensitivity: bool = typer.Option(False, "--sensitivity",
                                     help="Write each int8 artifact's per-layer sensitivity ranking (CSV + PNG) to --out."),
) -> None:
    """Export a model to edge formats, check each artifact against PyTorch, write manifest.json."""
    from edgecls.export.pipeline import ExportConfig, run_export
    from edgecls.models import resolve_name

    console = _console()
    extra = [p for p, wanted in (("fp16", fp16), ("bf16", bf16), ("int8", int8)) if wanted]
    config = ExportConfig(
        model=name, weights=weights, pretrained=pretrained, random_weights=random_weights, formats=formats, extra_precisions=extra, calib=calib,
        calib_size=calib_size, resolution=resolution, batch=batch, dynamic_batch=dynamic_batch, nhwc=nhwc,
        input_type=input_type.strip().lower(),
        opset=opset, target=target, out=out or Path("out") / resolve_name(name), min_agreement=min_agreement,
        max_drop=max_drop, val=val, sensitivity=sensitivity,
    )
    run = run_export(config, log=progress_log(console))
    console.print(results_table(run.artifacts, title=f"{resolve_name(name)} -> {run.out}"))
    for line in budget_lines(run.artifacts):
        console.print(line, highlight=False)
    console.print(f"manifest: {run.manifest_path}")
    if not run.ok:
        raise typer.Exit(1)


def top_labels(path: Path, image_array, k: int = 3) -> list[tuple[str, float]]:
    """The top-``k`` (label, probability) of an artifact for one preprocessed NCHW image."""
    from edgecls.runtime.run import run_artifact
    from edgecls.labels import imagenet_labels

    logits, _ = run_artifact(path, image_array[None])
    return _top(logits[0], k, imagenet_labels())


def _top(logits, k: int, labels) -> list[tuple[str, float]]:
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    order = np.argsort(-probs)[:k]
    return [(labels[i], float(probs[i])) for i in order]


def demo(
    out: Path = typer.Option(DEMO_OUT, "--out", help="Output folder."),
    calib_size: int = typer.Option(100, "--calib-size", help="Number of built-in calibration images."),
) -> None:
    """Export the built-in pretrained tf_efficientnet_lite0 to every format (fp32 + int8) and classify a photo."""
    from rich.table import Table

    from edgecls.export.pipeline import ExportConfig, run_export
    from edgecls.labels import imagenet_labels
    from edgecls.models import create_model
    from edgecls.preprocess import builtin_photo_path, load_image, preprocess_for

    console = _console()
    config = ExportConfig(model=DEMO_MODEL, pretrained=True, extra_precisions=["int8"], calib="builtin",
                          calib_size=calib_size, out=out)
    run = run_export(config, log=progress_log(console))
    console.print(results_table(run.artifacts, title=f"{DEMO_MODEL} (pretrained) -> {run.out}"))

    import torch  # after run_export: without torch it has already said what to install

    model = create_model(DEMO_MODEL, pretrained=True)
    image = preprocess_for(model.edgecls_info, load_image(builtin_photo_path(DEMO_PHOTO)))
    with torch.no_grad():
        reference = model(torch.from_numpy(image[None]))[0].numpy()
    labels = imagenet_labels()
    table = Table(title=f"top-3 for the built-in photo '{DEMO_PHOTO}'")
    for column in ("artifact", "1st", "2nd", "3rd"):
        table.add_column(column)

    def row(name: str, top: list[tuple[str, float]]) -> None:
        table.add_row(name, *[f"{label} {prob:.1%}" for label, prob in top])

    row("PyTorch (reference)", _top(reference, 3, labels))
    for entry in run.artifacts:
        if entry["status"] == "passed":
            row(f"{entry['format']} {entry['precision']}", top_labels(run.out / entry["file"], image))
    console.print(table)
    console.print(f"manifest: {run.manifest_path}")
    if run.ok:
        return
    from edgecls.manifest import UNVERIFIED

    # The demo shows the verification at work: an int8 artifact that misses its agreement gate on
    # the held-out photos is a verdict, recorded and not written, not a broken run. Anything else
    # (a converter crash, an fp32 that fails parity) is, and exits 1.
    failed = [a for a in run.artifacts if a["status"] not in ("passed", UNVERIFIED)]
    verdicts = [a for a in failed if a["precision"] == "int8" and str(a.get("error") or "").startswith("parity failed")]
    if verdicts:
        console.print(f"{len(verdicts)} int8 artifact(s) missed the top-1 agreement gate on the held-out photos and "
                      "were not written (table above, manifest.json)")
    if len(verdicts) < len(failed):
        raise typer.Exit(1)
