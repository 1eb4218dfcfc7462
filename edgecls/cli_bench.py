"""CLI commands for benchmarks: ``bench``, ``suite run``, ``report`` and ``info FILE``.

Plain typer command functions; edgecls/cli.py registers them. Nothing here imports torch or a
runtime at module level, so these commands work in a runtime-only install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgecls.errors import EdgeclsError, InvalidArgumentError


def _mb(n: int | None) -> str:
    return f"{n / 2**20:.1f}" if n else "-"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _short_target(record: dict) -> str:
    return Path(record["target"]).name if record["file"] else record["target"]


def _print_results(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped to a file: no terminal width to respect, so do not truncate
        console = Console(width=160)
    # Two narrow tables rather than one wide one: they stay readable in an 80-column terminal.
    latency = Table(title="latency (ms)")
    for column in ("target", "runtime", "prec", "thr", "p50", "p90", "p99", "mean±std", "min", "max", "img/s", "runs"):
        latency.add_column(column, justify="left" if column in ("target", "runtime", "prec") else "right")
    cost = Table(title="cost")
    for column in ("target", "runtime", "prec", "thr", "init ms", "1st ms", "RSS MB", "size MB", "GMACs",
                   "GFLOP/s", "% peak"):
        cost.add_column(column, justify="left" if column in ("target", "runtime", "prec") else "right")
    for r in results["results"]:
        lat = r["latency"]
        head = (_short_target(r), r["runtime"], r["precision"] or "?", str(r["threads"] or "default"))
        latency.add_row(*head, _num(lat["p50_ms"]), _num(lat["p90_ms"]), _num(lat["p99_ms"]),
                        f"{lat['mean_ms']:.2f}±{lat['std_ms']:.2f}", _num(lat["min_ms"]), _num(lat["max_ms"]),
                        _num(lat["throughput_ips"], 1), str(lat["runs"]))
        cost.add_row(*head, _num(r["init_ms"], 0), _num(r["first_inference_ms"], 1), _mb(r["peak_rss_bytes"]),
                     _mb(r["file_bytes"]), _num(r["macs"] / 1e9 if r["macs"] else None, 3), _num(r["gflops"], 1),
                     _num(r["peak_share"] * 100 if r["peak_share"] else None, 1))
    console.print(latency)
    console.print(cost)
    device = results["device"]
    console.print(f"device: {device['cpu']} ({device['physical_cores']} cores, ISA {' '.join(device['isa']) or '-'}), "
                  f"{device['os']}, Python {device['python']}; batch {results.get('batch', 1)}")
    formulas = sorted({r["fp32_peak_formula"] for r in results["results"] if r.get("fp32_peak_formula")})
    for formula in formulas:
        console.print(f"  {formula}")
    console.print(f"  {results['gflops_rule']}")
    console.print(f"  percentiles: {results['percentile_rule']}; each measurement in a fresh process")
    sources = sorted({r["macs_source"] for r in results["results"] if r.get("macs_source")})
    if sources:
        console.print(f"  MACs from: {'; '.join(sources)}")
    for error in results["errors"]:
        console.print(f"[red]not measured[/red] {error['target']} ({error['runtime']}, threads "
                      f"{error['threads']}): {error['error']}")


def bench(
    targets: list[str] = typer.Argument(
        ..., help="artifact files (.onnx, .xml, .tflite), export folders (every artifact of manifest.json) "
                  "or model names (PyTorch eager baseline)"),
    threads: Optional[str] = typer.Option(
        None, "--threads", "-t", help="comma-separated thread counts, e.g. 1,2 (default: all usable cores)"),
    batch: int = typer.Option(1, "--batch", "-b", help="images per inference"),
    warmup_runs: int = typer.Option(5, "--warmup-runs", help="warm up for at least this many runs..."),
    warmup_seconds: float = typer.Option(0.5, "--warmup-seconds", help="...and at least this long"),
    min_runs: int = typer.Option(50, "--min-runs", help="time at least this many runs..."),
    min_seconds: float = typer.Option(2.0, "--min-seconds", help="...and at least this long"),
    max_seconds: float = typer.Option(60.0, "--max-seconds", help="stop timing after this long regardless"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="checkpoint for model-name targets"),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r",
                                             help="input side for model names and dynamic-size artifacts"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write every result, raw times included, here"),
    device: Optional[list[str]] = typer.Option(
        None, "--device", "-d", help="measure on ssh://user@host[:port] or a name from the devices file (repeatable)"),
    devices_file: Optional[Path] = typer.Option(None, "--devices", help="devices file (default benchmarks/devices.toml)"),
    verify: Optional[bool] = typer.Option(
        None, "--verify/--no-verify", help="recompute parity where the artifact runs, from the export folder's "
                                           "inputs and PyTorch outputs (default: on with --device, off here)"),
) -> None:
    """Latency (p50/p90/p99), throughput, peak RSS, MACs and GFLOP/s, each measurement in a fresh process."""
    from edgecls.bench.device import describe_device
    from edgecls.bench.harness import parse_threads, resolve_targets, run_benchmarks
    from edgecls.bench.stats import TimingConfig

    timing = TimingConfig(warmup_runs, warmup_seconds, min_runs, min_seconds, max_seconds)
    if device:
        from edgecls.cli_devices import bench_on_devices

        resolved = resolve_targets(targets, resolution=resolution)
        bench_on_devices(resolved, device, devices_file, parse_threads(threads) if threads else None, batch, timing,
                         json_out, _print_results, verify=verify is not False)
        return
    thread_counts = parse_threads(threads) if threads else [describe_device().usable_cores]
    resolved = resolve_targets(targets, weights=str(weights) if weights else None, resolution=resolution)
    single = len(resolved) * len(thread_counts) == 1
    # One measurement: its error is the command's error. Several: report what failed, keep the rest.
    results = run_benchmarks(resolved, thread_counts, batch, timing, stop_on_error=single,
                             on_result=_progress_printer(len(resolved) * len(thread_counts)))
    if verify:
        from edgecls.bench.verify import attach

        attach(results, resolved)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=1))
    if not results["results"]:
        raise EdgeclsError(f"nothing could be measured: {results['errors'][0]['error']}")
    _print_results(results)
    if json_out:
        typer.echo(f"wrote {json_out}")
    if verify:
        from edgecls.cli_devices import report_parity

        if report_parity(results):
            raise typer.Exit(1)


def _progress_printer(total: int):
    done = [0]

    def on_result(target, threads, record, error) -> None:
        done[0] += 1
        what = f"[{done[0]}/{total}] {target.label} ({target.runtime}, threads {threads or 'default'})"
        if record:
            typer.echo(f"{what}: p50 {record['latency']['p50_ms']:.2f} ms over {record['latency']['runs']} runs",
                       err=True)
        else:
            typer.echo(f"{what}: {str(error).splitlines()[0]}", err=True)

    return on_result


def suite_run(
    suite_file: Path = typer.Argument(..., help="suite TOML, e.g. benchmarks/suites/quick.toml"),
    out: Optional[Path] = typer.Option(None, "--out", help="results folder (default: benchmarks/results beside the suite)"),
    exports: Optional[Path] = typer.Option(None, "--exports", help="export cache folder (default: from the suite)"),
    no_export: bool = typer.Option(False, "--no-export", help="benchmark only what is already exported"),
    export_only: bool = typer.Option(False, "--export-only", help="export what is missing, benchmark nothing"),
    executor: str = typer.Option("local", "--executor", help="where exports run: local, or ray (a Ray cluster)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster HEAD:PORT (default: a local one)"),
) -> None:
    """Export what is missing, benchmark models x formats x precisions x threads, write results JSON."""
    from edgecls.suite import load_suite, run_suite

    if no_export and export_only:
        raise InvalidArgumentError("--no-export and --export-only exclude each other: pick one")
    suite = load_suite(suite_file)
    path = run_suite(suite, results_dir=out, exports_dir=exports, export_missing=not no_export,
                     export_only=export_only, executor=executor, ray_address=ray_address)
    if path is None:
        typer.echo(f"exported into {exports or suite.export_dir}; benchmark with: edgecls suite run {suite_file} --no-export")
        return
    typer.echo(f"wrote {path}")
    typer.echo(f"report: edgecls report {path} --out {path.parent / path.stem}")


def report(
    results: list[Path] = typer.Argument(..., help="results JSON files (several devices merge into one table)"),
    out: Path = typer.Option(Path("benchmarks/report"), "--out", "-o", help="folder for report.md, results.csv, PNGs"),
    no_plots: bool = typer.Option(False, "--no-plots", help="skip the PNG plots"),
) -> None:
    """Markdown table, CSV and plots (latency vs MACs, int8 speed-up, latency vs parity) from results."""
    from edgecls.report import write_report

    written = write_report(results, out, plots=not no_plots)
    for kind, path in written.items():
        typer.echo(f"{kind:18s} {path}")


def info_artifact(path: Path, as_json: bool = False) -> None:
    """What an artifact file is: format, size, input, output, precision, model and MACs (no torch)."""
    from edgecls.bench.harness import FORMAT_OF_SUFFIX, RUNTIME_OF_FORMAT, artifact_bytes, resolve_targets
    from edgecls.runtime.graph import count_artifact_macs
    from edgecls.runtime.registry import open_runner

    path = Path(path)
    if not path.is_file():
        raise EdgeclsError(f"artifact not found: {path}")
    (target,) = resolve_targets([str(path)])
    runner = open_runner(path, runtime=RUNTIME_OF_FORMAT[FORMAT_OF_SUFFIX[path.suffix.lower()]])
    spec = runner.input_spec
    data = {
        "file": str(path),
        "format": target.format,
        "runtime": runner.runtime,
        "runtime_version": runner.version(),
        "bytes": artifact_bytes(path),
        "model": target.model,
        "precision": target.precision,
        "input": {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "layout": spec.layout},
    }
    try:
        counted = count_artifact_macs(path, batch=1, resolution=target.resolution)
        data["macs"] = counted.macs_per_image
        data["macs_by_op"] = counted.by_op
        data["macs_complete"] = counted.complete
    except EdgeclsError as exc:
        data["macs"] = None
        data["macs_error"] = str(exc)
    if target.manifest_entry:
        data["manifest"] = {k: v for k, v in target.manifest_entry.items() if k != "file"}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(f"[bold]{path.name}[/bold]: {data['format']} for {data['runtime']} {data['runtime_version']}")
    console.print(f"  size        {data['bytes']:,} bytes ({data['bytes'] / 2**20:.2f} MB, side files included)")
    console.print(f"  model       {data['model'] or 'unknown (no manifest or metadata names it)'}")
    console.print(f"  precision   {data['precision'] or 'unknown'}")
    console.print(f"  input       {spec.name} {tuple(spec.shape)} {spec.dtype} {spec.layout}")
    if data.get("macs"):
        ops = ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in data["macs_by_op"].items())
        note = "" if data["macs_complete"] else " (some layers had dynamic shapes and were not counted)"
        console.print(f"  MACs        {data['macs']:,} ({data['macs'] / 1e6:.1f} M per image: {ops}){note}")
    else:
        console.print(f"  MACs        unknown: {data.get('macs_error', 'no conv/matmul found')}")
    parity = target.manifest_entry.get("parity") if target.manifest_entry else None
    if parity:
        console.print(f"  parity      {json.dumps(parity)[:200]}")


def _standalone() -> None:
    """``python -m edgecls.cli_bench``: these commands without the rest of the CLI (tests, runtime-only)."""
    import sys

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
    app.command(name="bench")(bench)
    app.command(name="report")(report)

    @app.command(name="info")
    def info(path: Path, as_json: bool = typer.Option(False, "--json")) -> None:
        info_artifact(path, as_json=as_json)

    suite = typer.Typer()
    suite.command(name="run")(suite_run)
    app.add_typer(suite, name="suite")
    try:
        app()
    except EdgeclsError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    _standalone()
