"""The benchmark half of a suite with ``devices = [...]``: the plan measured over a device pool.

``run_suite`` exports on this machine as usual, then hands the artifacts here; they are measured
on the devices (edgecls.devices.pool: one measurement at a time per device, retries, a failed
device's measurements listed), and one merged results file comes back with a device column.
"""

from __future__ import annotations

import re


def pool_folder_name(names: list[str]) -> str:
    """``results/<this>/<date>.json`` for a pool: the device names, filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", "+".join(sorted(names))).strip("-") or "devices"


def bench_plan_on_devices(suite, targets: list, local_results: dict, console) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgecls.devices.config import resolve_devices
    from edgecls.devices.pool import run_on_devices

    devices = resolve_devices(suite.devices, suite.devices_file)
    artifacts = [t for t in targets if t.path]
    if len(artifacts) < len(targets):
        console.print("torch baseline skipped on devices: they run exported artifacts only (no torch there)")
    # "max" is each device's own core count: the agent resolves an unset thread count on the device.
    threads = list(dict.fromkeys(None if t == "max" else int(t) for t in suite.threads))
    per_device = len(artifacts) * len(threads)
    total = per_device * (len(devices) if suite.device_pool == "each" else 1)
    console.print(f"benchmarking {total} measurements on {len(devices)} device(s) "
                  f"({', '.join(d.name for d in devices)}; pool mode {suite.device_pool})")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("devices", total=total)

        def on_event(event) -> None:
            job = event.job
            label = f"{job.target.model or job.target.label} {job.target.runtime} {job.target.precision} " \
                    f"x{job.threads or 'max'}" if job else ""
            if event.kind == "result":
                progress.console.print(f"  {event.device.name}: {label}: p50 {event.record['latency']['p50_ms']:.2f} ms")
                progress.advance(task)
            elif event.kind == "error":
                progress.console.print(f"  [red]{label}: {event.message}[/red]")
                progress.advance(task)
            elif event.kind == "retry":
                progress.console.print(f"  [yellow]{event.device.name}: retrying {label}: {event.message}[/yellow]")
            elif event.kind == "device_failed":
                progress.console.print(f"  [red]{event.device.name} failed: {event.message}[/red]")
            elif event.kind == "connected":
                progress.console.print(f"  {event.device.name}: ready ({event.message})")

        pooled = run_on_devices(devices, artifacts, threads, suite.batch, suite.timing, mode=suite.device_pool,
                                on_event=on_event)
    pooled["suite"] = local_results.get("suite")
    pooled["errors"] = local_results["errors"] + pooled["errors"]  # failed exports first, as a local run
    return pooled
