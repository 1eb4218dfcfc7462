"""``edgecls bench ... --device NAME|ssh://...``: the CLI side of benchmarks on other machines.

cli_bench.bench hands over here when ``--device`` is given; this prints progress and the results
per device and turns failures into one line each (device and cause) with exit code 2, after the
devices that worked have printed and saved their results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def _event_printer(total: int):
    done = [0]

    def on_event(event) -> None:
        what = ""
        if event.job is not None:
            what = f"{Path(event.job.target.label).name} ({event.job.target.runtime}, threads {event.job.threads or 'default'})"
        if event.kind == "connected":
            typer.echo(f"{event.device.name}: ready ({event.message})", err=True)
        elif event.kind == "result":
            done[0] += 1
            lat = event.record["latency"]
            typer.echo(f"[{done[0]}/{total}] {event.device.name}: {what}: p50 {lat['p50_ms']:.2f} ms over "
                       f"{lat['runs']} runs", err=True)
        elif event.kind == "error":
            done[0] += 1
            typer.echo(f"[{done[0]}/{total}] {what}: {event.message}", err=True)
        elif event.kind == "retry":
            typer.echo(f"{event.device.name}: retrying {what}: {event.message}", err=True)

    return on_event


def report_parity(results: dict) -> bool:
    """Print the parity recomputed where the artifacts ran; True if one broke its rule there."""
    from edgecls.bench.verify import summary_lines

    lines = summary_lines(results)
    for line in lines:
        typer.echo(line)
    return any(": FAILED: " in line for line in lines)


def bench_on_devices(targets, device_names: list[str], devices_file: Path | None, threads: list | None, batch: int,
                     timing, json_out: Path | None, print_results, verify: bool = True) -> None:
    from edgecls.devices.config import resolve_devices
    from edgecls.devices.pool import per_device, run_on_devices

    devices = resolve_devices(device_names, devices_file)
    total = sum(len(targets) * len(threads or d.threads or [None]) for d in devices)
    results = run_on_devices(devices, targets, threads, batch, timing, on_event=_event_printer(total), verify=verify)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=1))
    for name, sub in per_device(results):
        typer.echo(f"\n== {name} ==")
        print_results({**sub, "errors": []})
    if json_out:
        typer.echo(f"wrote {json_out}")
    parity_failed = report_parity(results) if verify else False
    failures = [e["error"] for e in results["errors"]]
    if failures:
        for line in dict.fromkeys(failures):  # a failed device's measurements share one cause
            typer.echo(f"error: {line}", err=True)
        sys.exit(2)
    if parity_failed:
        sys.exit(1)  # measured, but an artifact computes something else there than at export
