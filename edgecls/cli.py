"""The `edgecls` command: thin typer commands over the models, export and bench packages.

User errors (EdgeclsError) print one line and exit with code 2; nothing else is caught, so a bug
still shows its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from edgecls.errors import EdgeclsError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Image classifiers from PyTorch to edge runtimes: models, export, benchmarks.",
)

ARTIFACT_SUFFIXES = (".onnx", ".xml", ".tflite")


def _human(n: float, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def meta_profile(name: str, resolution: int | None = None):
    """(ModelInfo, ModelProfile) counted on torch's meta device: shapes only, no weights, no compute."""
    import torch

    from edgecls.models import get_model_info
    from edgecls.profile import profile_model

    info = get_model_info(name)
    if resolution is not None:
        info.check_resolution(resolution)
    sized = {"img_size": resolution} if info.sized_at_build and resolution is not None else {}
    with torch.device("meta"):
        model = info.builder(num_classes=info.num_classes, **sized)
    model.edgecls_info = info
    return info, profile_model(model, resolution=resolution)


def model_summary(name: str, resolution: int | None = None) -> dict:
    """Params and MACs of a registered model (the `edgecls models` row)."""
    info, profile = meta_profile(name, resolution)
    return {
        "name": info.name,
        "family": info.family,
        "params": profile.params,
        "macs": profile.macs,
        "resolution": profile.resolution,
        "top1": info.top1,
        "paper_madds": info.paper_madds,
        "references": list(info.references),
        "pretrained": info.pretrained is not None,
    }


@app.command()
def models(
    pattern: Optional[str] = typer.Argument(None, help="fnmatch filter, e.g. 'mobilenet*'"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List the model zoo: params, MACs, native resolution, published top-1."""
    from edgecls.models import list_models

    names = list_models(pattern)
    if not names:
        raise EdgeclsError(f"no model matches '{pattern}': run `edgecls models` to list them")
    rows = sorted((model_summary(n) for n in names), key=lambda r: (r["family"], r["macs"]))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgecls model zoo ({len(rows)} models)")
    for column in ("name", "params", "MACs", "res", "top-1 %", "paper MAdds", "weights"):
        if column == "name":
            table.add_column(column, no_wrap=True, min_width=max(len(r["name"]) for r in rows))
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["name"], _human(r["params"]), _human(r["macs"]), str(r["resolution"]),
            f"{r['top1']:.1f}" if r["top1"] else "-",
            f"{r['paper_madds']:.0f}M" if r["paper_madds"] else "-",
            "built-in" if r["pretrained"] else "",
        )
    console = Console()
    (console if console.is_terminal else Console(width=120)).print(table)


@app.command()
def info(
    target: str = typer.Argument(..., help="model name, or an artifact file (.onnx, .xml, .tflite)"),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="input side in pixels"),
    layers: bool = typer.Option(False, "--layers", help="per-layer table"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Params, MACs and activation memory of a model (or an exported artifact)."""
    if Path(target).suffix.lower() in ARTIFACT_SUFFIXES:
        from edgecls.cli_bench import info_artifact

        info_artifact(Path(target), as_json=as_json)
        return
    meta, profile = meta_profile(target, resolution)
    data = profile.to_dict(layers=layers)
    data.update(family=meta.family, top1=meta.top1, paper_madds=meta.paper_madds, mean=list(meta.mean),
                std=list(meta.std), crop_pct=meta.crop_pct, interpolation=meta.interpolation,
                references=list(meta.references))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console = console if console.is_terminal else Console(width=120)
    console.print(f"[bold]{profile.name}[/bold] ({meta.family}) at {profile.resolution}x{profile.resolution}")
    console.print(f"  params      {profile.params:,} ({_human(profile.params)})")
    console.print(f"  MACs        {profile.macs:,} ({_human(profile.macs)}; conv + linear + matmul)")
    console.print(f"  activations {_human(profile.activation_bytes, 'B')} summed over layers, "
                  f"{_human(profile.peak_activation_bytes, 'B')} largest layer in+out (fp32)")
    console.print(f"  input       mean {meta.mean} std {meta.std}, crop {meta.crop_pct}, {meta.interpolation}")
    if meta.top1:
        console.print(f"  top-1       {meta.top1} % (published, reference weights)")
    if layers:
        table = Table()
        for column in ("layer", "type", "output", "params", "MACs"):
            table.add_column(column, justify="left" if column in ("layer", "type") else "right")
        for layer in profile.layers:
            table.add_row(layer.name, layer.kind, "x".join(map(str, layer.output_shape)), f"{layer.params:,}",
                          f"{layer.macs:,}")
        console.print(table)


def _register_commands() -> None:
    """Export and bench commands live in their own modules; those import nothing heavy at load."""
    from edgecls import cli_bench, cli_export

    app.command(name="export")(cli_export.export)
    app.command(name="demo")(cli_export.demo)
    app.command(name="bench")(cli_bench.bench)
    app.command(name="report")(cli_bench.report)
    suite = typer.Typer(help="Benchmark suites: export what is missing, benchmark, write results.")
    suite.command(name="run")(cli_bench.suite_run)
    app.add_typer(suite, name="suite")


_register_commands()


def main() -> None:
    try:
        app()
    except EdgeclsError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # python -m edgecls.cli
    main()
