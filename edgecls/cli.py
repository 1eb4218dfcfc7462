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

def _human(n: float, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


@app.command()
def models(
    pattern: Optional[str] = typer.Argument(None, help="fnmatch filter, e.g. 'mobilenet*'"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List the model zoo: params, MACs, native resolution, published top-1."""
    from edgecls.models import list_models
    from edgecls.profile import model_summary

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
    target: str = typer.Argument(..., help="model name, or an artifact (.onnx, .xml, .tflite, .pte, .ncnn.param, .mlpackage)"),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="input side in pixels"),
    layers: bool = typer.Option(False, "--layers", help="per-layer table"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    no_verify: bool = typer.Option(False, "--no-verify", help="open the artifact even if it does not match "
                                   "the sha256 of its folder's manifest.json"),
) -> None:
    """Params, MACs and activation memory of a model (or an exported artifact)."""
    from edgecls.formats import is_artifact_path

    if is_artifact_path(target):
        from edgecls.cli_bench import info_artifact

        info_artifact(Path(target), as_json=as_json, verify=not no_verify)
        return
    from edgecls.profile import meta_profile

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
    from edgecls import cli_bench, cli_data, cli_evaluate, cli_export

    app.command(name="export")(cli_export.export)
    app.command(name="demo")(cli_export.demo)
    app.command(name="bench")(cli_bench.bench)
    app.command(name="report")(cli_bench.report)
    cli_evaluate.register(app)
    suite = typer.Typer(help="Benchmark suites: export what is missing, benchmark, write results.")
    suite.command(name="run")(cli_bench.suite_run)
    app.add_typer(suite, name="suite")
    cli_data.register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except EdgeclsError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except SystemExit as exc:
        if exc.code == 130:  # typer turns Ctrl-C (and SIGTERM, see edgecls.isolation) into exit 130, silently
            typer.echo("interrupted", err=True)
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # python -m edgecls.cli
    main()
