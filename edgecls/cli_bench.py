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

    from edgecls.report.rows import precision_text

    console = Console()
    if not console.is_terminal:  # piped to a file: no terminal width to respect, so do not truncate
        console = Console(width=160)
    # Two narrow tables rather than one wide one: they stay readable in an 80-column terminal.
    latency = Table(title="latency (ms)")
    for column in ("target", "runtime", "prec", "thr", "batch", "p50", "p90", "p99", "mean±std", "min", "max", "img/s", "runs"):
        latency.add_column(column, justify="left" if column in ("target", "runtime", "prec") else "right")
    cost = Table(title="cost")
    for column in ("target", "runtime", "prec", "thr", "batch", "init ms", "1st ms", "RSS MB", "size MB", "GMACs",
                   "GFLOP/s", "% peak", "% roof"):
        cost.add_column(column, justify="left" if column in ("target", "runtime", "prec") else "right")
    for r in results["results"]:
        lat = r["latency"]
        head = (_short_target(r), r["runtime"], precision_text(r), str(r["threads"] or "default"), str(r["batch"]))
        latency.add_row(*head, _num(lat["p50_ms"]), _num(lat["p90_ms"]), _num(lat["p99_ms"]),
                        f"{lat['mean_ms']:.2f}±{lat['std_ms']:.2f}", _num(lat["min_ms"]), _num(lat["max_ms"]),
                        _num(lat["throughput_ips"], 1), str(lat["runs"]))
        cost.add_row(*head, _num(r["init_ms"], 0), _num(r["first_inference_ms"], 1), _mb(r["peak_rss_bytes"]),
                     _mb(r["file_bytes"]), _num(r["macs"] / 1e9 if r["macs"] else None, 3), _num(r["gflops"], 1),
                     _num(r["peak_share"] * 100 if r["peak_share"] else None, 1),
                     _num(r["roofline"]["share_of_attainable"] * 100 if r.get("roofline") else None, 1))
    console.print(latency)
    console.print(cost)
    device = results["device"]
    console.print(f"device: {device['cpu']} ({device['physical_cores']} cores, ISA {' '.join(device['isa']) or '-'}), "
                  f"{device['os']}, Python {device['python']}; batch {results.get('batch', 1)}")
    formulas = sorted({r["fp32_peak_formula"] for r in results["results"] if r.get("fp32_peak_formula")})
    for formula in formulas:
        console.print(f"  nominal {formula}")
    measured = results.get("measured_peak")
    if measured:
        for peak in measured["peaks"]:
            winners = {precision: max(figures, key=figures.get) for precision, figures in
                       (peak.get("by_library") or {}).items() if figures}
            of = lambda precision: f" ({winners[precision]})" if precision in winners else ""  # noqa: E731
            bf16 = f"bf16 GEMM {peak['bf16_gflops']:.1f} GFLOP/s{of('bf16')}, " if peak.get("bf16_gflops") else ""
            console.print(f"  measured peak at {peak['threads']} thread(s): fp32 GEMM {peak['fp32_gflops']:.1f} GFLOP/s"
                          f"{of('fp32')}, int8 GEMM {peak['int8_gops']:.1f} GOP/s{of('int8')}, {bf16}"
                          f"bandwidth {peak['bandwidth_gbs']:.1f} GB/s ({measured['runtime']}, "
                          f"{measured['method']['statistic']})")
        console.print("  % roof = achieved / min(compute peak of the precision, intensity x bandwidth); "
                      "intensity from MACs and artifact + input + output bytes (minimal traffic)")
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
    batch: str = typer.Option("1", "--batch", "-b", help="images per inference; a list such as 1,2,4,8 sweeps"),
    warmup_runs: int = typer.Option(5, "--warmup-runs", help="warm up for at least this many runs..."),
    warmup_seconds: float = typer.Option(0.5, "--warmup-seconds", help="...and at least this long"),
    min_runs: int = typer.Option(50, "--min-runs", help="time at least this many runs..."),
    min_seconds: float = typer.Option(2.0, "--min-seconds", help="...and at least this long"),
    max_seconds: float = typer.Option(60.0, "--max-seconds", help="stop timing after this long regardless"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="checkpoint for model-name targets"),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r",
                                             help="input side for model names and dynamic-size artifacts"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write every result, raw times included, here"),
    verify: Optional[bool] = typer.Option(
        None, "--verify/--no-verify",
        help="--verify: also recompute parity where the artifact runs, from the export folder's inputs and "
             "PyTorch outputs (default: on with --device, off here); --no-verify: run artifacts even if they do "
             "not match the sha256 of their folder's manifest.json, and recompute nothing"),
    calibrate_peak: bool = typer.Option(
        False, "--calibrate-peak", help="measure this machine's fp32/int8 GEMM and memory-bandwidth ceilings "
                                        "again (cached per device; used for the roofline of every result)"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write roofline and sweep plots (PNG) into this folder"),
    device: Optional[list[str]] = typer.Option(
        None, "--device", "-d", help="measure on ssh://user@host[:port] or a name from the devices file (repeatable)"),
    devices_file: Optional[Path] = typer.Option(None, "--devices", help="devices file (default benchmarks/devices.toml)"),
) -> None:
    """Latency (p50/p90/p99), throughput, peak RSS, MACs and GFLOP/s, each measurement in a fresh process."""
    from edgecls.bench.device import describe_device
    from edgecls.bench.harness import parse_threads, resolve_targets, run_benchmarks
    from edgecls.bench.stats import TimingConfig
    from edgecls.bench.sweep import merge_results, parse_batches

    timing = TimingConfig(warmup_runs, warmup_seconds, min_runs, min_seconds, max_seconds)
    batches = parse_batches(batch)
    if device:
        from edgecls.cli_devices import bench_on_devices

        if len(batches) > 1:
            raise InvalidArgumentError("--device measures one batch size at a time: give a single --batch")
        resolved = resolve_targets(targets, resolution=resolution, verify=verify is not False)
        bench_on_devices(resolved, device, devices_file, parse_threads(threads) if threads else None, batches[0],
                         timing, json_out, _print_results, verify=verify is not False)
        return
    thread_counts = parse_threads(threads) if threads else [describe_device().usable_cores]
    resolved = resolve_targets(targets, weights=str(weights) if weights else None, resolution=resolution,
                               verify=verify is not False)
    if json_out:
        _check_writable(json_out, "--json")  # before minutes of measuring, not after
    if plots:
        _check_folder(plots, "--plots")
    total = len(resolved) * len(thread_counts) * len(batches)
    # One measurement: its error is the command's error. Several: report what failed, keep the rest.
    progress = _progress_printer(total)
    results = merge_results([run_benchmarks(resolved, thread_counts, b, timing, stop_on_error=total == 1,
                                            on_result=progress) for b in batches])
    _add_roofline(results, thread_counts, refresh=calibrate_peak)
    if verify:
        from edgecls.bench.verify import attach

        attach(results, resolved)
    if plots:
        _write_bench_plots(results, plots)
    write_error = None
    if json_out:
        from edgecls.manifest import atomic_write_bytes, describe_os_error

        try:
            atomic_write_bytes(json_out, json.dumps(results, indent=1).encode())
        except OSError as exc:
            write_error = f"cannot write --json {json_out}: {describe_os_error(exc)} (the results are printed above)"
    if not results["results"]:
        raise EdgeclsError(f"nothing could be measured: {results['errors'][0]['error']}")
    _print_results(results)
    if write_error:
        raise EdgeclsError(write_error)
    if json_out:
        typer.echo(f"wrote {json_out}")
    if verify:
        from edgecls.cli_devices import report_parity

        if report_parity(results):
            raise typer.Exit(1)


def _check_writable(path: Path, option: str) -> None:
    """One line now, when ``path`` cannot be written (a folder, under a file, read-only...)."""
    from edgecls.manifest import describe_os_error

    path = Path(path)
    if path.is_dir():
        raise EdgeclsError(f"{option} {path} is a folder: give a file name such as results.json")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as exc:
        raise EdgeclsError(f"cannot write {option} {path}: {describe_os_error(exc)}") from None
    if not existed:
        path.unlink(missing_ok=True)


def _check_folder(path: Path, option: str) -> None:
    from edgecls.manifest import describe_os_error

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeclsError(f"cannot create {option} {path}: {describe_os_error(exc)}") from None


def _add_roofline(results: dict, thread_counts: list, refresh: bool) -> None:
    """Roofline figures from the measured peaks: cached ones, or freshly measured with --calibrate-peak."""
    from edgecls.bench.roofline import attach_roofline

    if refresh:
        typer.echo("measuring the peak...", err=True)
    attach_roofline(results, thread_counts, refresh=refresh)


def _write_bench_plots(results: dict, folder: Path) -> None:
    from edgecls.bench.roofline import PeakTable, plot_roofline
    from edgecls.bench.sweep import plot_latency_vs_threads, plot_throughput_vs_batch

    records = results["results"]
    written = []
    if plot_throughput_vs_batch(records, folder / "throughput_vs_batch.png"):
        written.append(folder / "throughput_vs_batch.png")
    if plot_latency_vs_threads(records, folder / "latency_vs_threads.png"):
        written.append(folder / "latency_vs_threads.png")
    if results.get("measured_peak") and plot_roofline(records, PeakTable.from_dict(results["measured_peak"]),
                                                      folder / "roofline.png"):
        written.append(folder / "roofline.png")
    for path in written:
        typer.echo(f"wrote {path}")


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
    suite_file: str = typer.Argument(..., help="suite name (quick, zoo: shipped with edgecls) or a suite TOML file"),
    out: Optional[Path] = typer.Option(None, "--out", help="results folder (default: benchmarks/results beside the suite)"),
    exports: Optional[Path] = typer.Option(None, "--exports", help="export cache folder (default: from the suite)"),
    no_export: bool = typer.Option(False, "--no-export", help="benchmark only what is already exported"),
    export_only: bool = typer.Option(False, "--export-only", help="export what is missing, benchmark nothing"),
    executor: str = typer.Option("local", "--executor", help="where exports run: local, or ray (a Ray cluster)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster HEAD:PORT (default: a local one)"),
) -> None:
    """Export what is missing, benchmark models x formats x precisions x threads, write results JSON."""
    from edgecls.resources import find_suite
    from edgecls.suite import load_suite, run_suite

    if no_export and export_only:
        raise InvalidArgumentError("--no-export and --export-only exclude each other: pick one")
    suite_path, base = find_suite(suite_file)
    suite = load_suite(suite_path, base=base)
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
    html: bool = typer.Option(False, "--html", help="also write report.html: one self-contained page"),
    max_drop: Optional[float] = typer.Option(None, "--max-drop", help="accuracy budget in top-1 points (default 1) "
                                             "when evaluation.json files are passed"),
    latency_budget: Optional[float] = typer.Option(None, "--latency-budget", help="also name the most accurate "
                                                   "artifact (measured or published top-1) within this p50 in ms"),
) -> None:
    """Markdown table, CSV and plots (latency vs MACs, int8 speed-up, latency vs parity) from results."""
    from edgecls.report import write_report

    written = write_report(results, out, plots=not no_plots, html=html,
                           max_drop=None if max_drop is None else max_drop / 100, latency_ms=latency_budget)
    for kind, path in written.items():
        typer.echo(f"{kind:18s} {path}")


def info_artifact(path: Path, as_json: bool = False, verify: bool = True) -> None:
    """What an artifact file is: format, size, input, output, precision, classes, preprocessing,
    model and MACs (no torch).

    The runtime opens the file in a child process (edgecls.isolation): a runtime that crashes on
    it gives one line, not a dead command. Where the runtime cannot run here (ExecuTorch's needs
    torch, Core ML's macOS), the input spec comes from the artifact's own metadata instead and the
    runtime line says why."""
    from edgecls.bench.harness import resolve_targets
    from edgecls.formats import artifact_bytes, format_of
    from edgecls.isolation import run_isolated
    from edgecls.runtime.base import sidecar_problem
    from edgecls.runtime.registry import read_metadata

    path = Path(path)
    if not path.exists():
        raise EdgeclsError(f"artifact not found: {path}")
    fmt = format_of(path)
    if any(s.endswith(".json") for s in fmt.side_suffixes):  # a format whose metadata lives in a sidecar
        problem = sidecar_problem(path)
        if problem:
            raise EdgeclsError(problem)
    (target,) = resolve_targets([str(path)], verify=verify)
    meta = read_metadata(path)
    outcome = run_isolated("edgecls.runtime.run:describe_artifact", {"path": str(path), "resolution": target.resolution},
                           timeout=600)
    if outcome.ok:
        described = outcome.value
        runtime_note = ""
    elif outcome.user_error and (outcome.error_type == "MissingDependencyError" or not fmt.runs_here()):
        described = _described_from_metadata(fmt, meta)
        runtime_note = outcome.message or ""
    else:
        outcome.raise_for_user_error()
        raise EdgeclsError(f"the {target.runtime} runtime failed on {path}: {outcome.describe()}")
    spec = described["input"]
    labels = meta.get("labels") or []
    data = {
        "file": str(path),
        "format": target.format,
        "runtime": described["runtime"],
        "runtime_version": described["runtime_version"],
        "bytes": artifact_bytes(path),
        "model": target.model or meta.get("model"),
        "precision": target.precision or meta.get("precision"),
        "input": spec,
        "input_type": meta.get("input_type", "float32"),
        "input_kind": meta.get("input_kind", "tensor"),  # "image": Core ML's ImageType input
        "num_classes": meta.get("num_classes") or (len(labels) or None),
        "labels": labels[:5],
        "preprocessing": {k: meta[k] for k in ("resolution", "mean", "std", "crop_pct", "interpolation", "layout")
                          if k in meta},
        "macs": described.get("macs"),
    }
    if runtime_note:
        data["runtime_unavailable"] = runtime_note
    for key in ("macs_by_op", "macs_complete", "macs_error"):
        if key in described:
            data[key] = described[key]
    if data["macs"] is None and target.manifest_entry and target.manifest_entry.get("macs"):
        data["macs"], data["macs_source"] = target.manifest_entry["macs"], "manifest"
    if target.manifest_entry:
        data["manifest"] = {k: v for k, v in target.manifest_entry.items() if k != "file"}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console = console if console.is_terminal else Console(width=160)
    runtime = f"{data['runtime']} {data['runtime_version']}".strip()
    console.print(f"[bold]{path.name}[/bold]: {data['format']} for {runtime}")
    if runtime_note:  # escaped: rich would read "[executorch]" in the install hint as markup
        console.print(f"  runtime     not runnable here ({escape(runtime_note)}); input spec from the artifact's metadata")
    console.print(f"  size        {data['bytes']:,} bytes ({data['bytes'] / 2**20:.2f} MB: the model's files, weights included)")
    console.print(f"  model       {data['model'] or 'unknown (no manifest or metadata names it)'}")
    console.print(f"  precision   {data['precision'] or 'unknown'}")
    console.print(f"  input       {spec['name']} {tuple(spec['shape'])} {spec['dtype']} {spec['layout']}")
    if data["input_type"] == "uint8":
        note = ("RGB image input (Core ML ImageType: the app passes a CVPixelBuffer), normalisation in the graph"
                if data["input_kind"] == "image" else
                "uint8 tensor, normalisation in the graph" if spec["dtype"] == "uint8" else
                f"RGB byte values 0-255 held as {spec['dtype']}: {UINT8_AS_FLOAT.get(data['format'], 'no uint8 input')}")
        console.print(f"  input type  uint8 ({note})")
    pre = data["preprocessing"]
    if pre:
        console.print("  preprocess  " + ", ".join(f"{k} {v}" for k, v in pre.items()))
    if data["num_classes"]:
        shown = ", ".join(data["labels"]) + (", ..." if len(labels) > 5 else "")
        console.print(f"  classes     {data['num_classes']}" + (f" ({escape(shown)})" if shown else " (no labels embedded)"))
    if data.get("macs"):
        ops = ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in data.get("macs_by_op", {}).items())
        note = "" if data.get("macs_complete", True) else " (some layers had dynamic shapes and were not counted)"
        source = f": {ops}" if ops else " (from the manifest)"
        console.print(f"  MACs        {data['macs']:,} ({data['macs'] / 1e6:.1f} M per image{source}){note}")
    else:
        console.print(f"  MACs        unknown: {data.get('macs_error', 'no conv/matmul found')}")
    parity = target.manifest_entry.get("parity") if target.manifest_entry else None
    if parity:
        console.print(f"  parity      {json.dumps(parity)[:200]}")


# Why a --input-type uint8 artifact of these formats still has a float input tensor.
UINT8_AS_FLOAT = {
    "ncnn": "ncnn::Mat holds float; an app fills it with Mat::from_pixels from the bytes",
}


def _described_from_metadata(fmt, meta: dict) -> dict:
    """describe_artifact's answer from the artifact's metadata, for a runtime that cannot run here."""
    shape = meta.get("input_shape")
    try:
        shape = json.loads(shape) if isinstance(shape, str) else shape
    except ValueError:
        shape = None
    layout = meta.get("layout") or "NCHW"
    if not isinstance(shape, list):
        side = int(meta.get("resolution") or 0) or None
        shape = [1, side, side, 3] if layout == "NHWC" else [1, 3, side, side]
    elif len(shape) == 3:  # NCNN records one image (no batch)
        shape = [1, *shape]
    dtype = meta.get("input_dtype") or "float32"
    return {"runtime": fmt.runtime, "runtime_version": "", "macs": None,
            "macs_error": f"no graph counter for {fmt.name}",
            "input": {"name": "input", "shape": shape, "dtype": dtype, "layout": layout}}


def _standalone() -> None:
    """``python -m edgecls.cli_bench``: these commands without the rest of the CLI (tests, runtime-only)."""
    import sys

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
    app.command(name="bench")(bench)
    app.command(name="report")(report)

    @app.command(name="info")
    def info(path: Path, as_json: bool = typer.Option(False, "--json"),
             no_verify: bool = typer.Option(False, "--no-verify")) -> None:
        info_artifact(path, as_json=as_json, verify=not no_verify)

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
