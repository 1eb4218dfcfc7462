"""Measurements fanned out over devices: one at a time per device, retried when a device drops.

Two ways to use a pool:

- ``mode="each"`` (default): every measurement on every device, the devices side by side (the
  device is a dimension of the results, like threads);
- ``mode="any"``: each measurement once, on whichever device is free (a pool of like boards).

Each device has one worker that measures one (artifact, threads) at a time, so nothing on a device
shares it with another measurement; two devices on one host:port share a lock for the same reason.
A dropped connection (or a device that does not answer) is retried ``retries`` times with a
growing pause, reconnecting each time; then the device is reported failed with the cause, and its
remaining measurements are listed as failed ("each") or go to the other devices ("any"). A
measurement is only ever taken from the device's finished result file, and each finished record
is kept as soon as it arrives: nothing already measured is lost when a device drops later.

The merged results have the schema of a local run plus ``devices`` (name -> description the
device gave of itself, status, error) and per record ``device_name``.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from edgecls.devices.config import Device, DeviceError


@dataclass
class Job:
    target: object  # edgecls.bench.harness.Target
    threads: int | None
    attempts: dict = field(default_factory=dict)  # device name -> failed attempts


@dataclass
class PoolEvent:
    kind: str  # "connected", "result", "error", "retry", "device_failed"
    device: Device
    job: Job | None = None
    record: dict | None = None
    message: str = ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _merged_skeleton(timing, batch: int, mode: str, devices: list[Device]) -> dict:
    from edgecls.bench.harness import SCHEMA
    from edgecls.bench.stats import PERCENTILE_RULE

    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": None,  # the first device that answered (one-device runs read like local ones)
        "devices": {d.name: {"ssh": d.target, "tags": list(d.tags), "status": "pending", "description": None,
                             "error": None} for d in devices},
        "pool_mode": mode,
        "timing": timing.to_dict(),
        "percentile_rule": PERCENTILE_RULE,
        "batch": batch,
        "results": [],
        "errors": [],
    }


async def _worker(device: Device, queue: collections.deque, shared: bool, live: dict, locks: dict,
                  merged: dict, batch: int, timing, retries: int, backoff: float,
                  emit: Callable[[PoolEvent], None], verify: bool) -> None:
    from edgecls.devices.ssh import DeviceDropped, DeviceSession

    session: DeviceSession | None = None
    verified: dict[str, dict] = {}  # target label -> parity computed on this device
    entry = merged["devices"][device.name]
    lock = locks.setdefault((device.host, device.port), asyncio.Lock())

    def fail_device(cause: str) -> None:
        entry["status"], entry["error"] = "failed", cause
        live.pop(device.name, None)
        emit(PoolEvent("device_failed", device, message=cause))

    while True:
        if not queue:
            break
        job = queue.popleft()
        try:
            async with lock:
                if session is None:
                    session = DeviceSession(device)
                    await session.connect()
                    await session.prepare()
                    emit(PoolEvent("connected", device, message=session.info.get("machine", "")))
                # Parity once per artifact and device, however many thread counts are measured.
                check = verify and job.target.label not in verified
                results = await session.measure([job.target], [job.threads], batch, timing, verify=check)
        except DeviceDropped as exc:
            if session is not None:
                await session.close()
                session = None
            job.attempts[device.name] = job.attempts.get(device.name, 0) + 1
            if job.attempts[device.name] <= retries:
                emit(PoolEvent("retry", device, job, message=_first_line(exc)))
                queue.appendleft(job)
                await asyncio.sleep(backoff * 2 ** (job.attempts[device.name] - 1))
                continue
            cause = _first_line(exc)
            fail_device(cause)
            _give_up(device, job, queue, shared, live, merged, cause, emit)
            return
        except DeviceError as exc:
            if session is not None:
                await session.close()
                session = None
            cause = _first_line(exc)
            fail_device(cause)
            _give_up(device, job, queue, shared, live, merged, cause, emit)
            return
        description = results.get("device") or {}
        if entry["description"] is None:
            entry["description"], entry["status"] = description, "ok"
            entry["agent"] = results.get("agent")
            merged["device"] = merged["device"] or description
            merged.setdefault("gflops_rule", results.get("gflops_rule"))
        for record in results.get("results", []):
            if verify:
                record["device_parity"] = verified.setdefault(job.target.label, record.get("device_parity"))
            record["remote_file"], record["file"] = record.get("file"), job.target.path
            record["target"] = job.target.label
            record["device_name"] = device.name
            merged["results"].append(record)
            emit(PoolEvent("result", device, job, record=record))
        for error in results.get("errors", []):
            message = f"device {device.label()}: {error['error']}"
            merged["errors"].append({**error, "target": job.target.label, "device": device.name, "error": message})
            emit(PoolEvent("error", device, job, message=message))
    if session is not None:
        await session.close()


def _give_up(device: Device, job: Job, queue: collections.deque, shared: bool, live: dict, merged: dict,
             cause: str, emit) -> None:
    """A failed device's current and queued measurements: to another device ("any") or failed."""
    pending = [job]
    if not shared:
        pending += list(queue)
        queue.clear()
    for item in pending:
        if shared and live:
            queue.append(item)  # the other workers of a shared queue take it
            continue
        message = f"device {device.label()}: {cause}"
        merged["errors"].append({"target": item.target.label, "runtime": item.target.runtime,
                                 "threads": item.threads, "device": device.name, "error": message})
        emit(PoolEvent("error", device, item, message=message))


async def _run(devices: list[Device], targets: list, threads_for: Callable[[Device], list], batch: int, timing,
               mode: str, retries: int, backoff: float, emit, verify: bool) -> dict:
    merged = _merged_skeleton(timing, batch, mode, devices)
    locks: dict = {}
    live = {d.name: d for d in devices}
    if mode == "any":
        shared_queue = collections.deque(Job(t, n) for t in targets for n in threads_for(devices[0]))
        queues = {d.name: shared_queue for d in devices}
    else:
        queues = {d.name: collections.deque(Job(t, n) for t in targets for n in threads_for(d)) for d in devices}
    workers = devices
    while workers:
        await asyncio.gather(*(_worker(d, queues[d.name], mode == "any", live, locks, merged, batch, timing, retries,
                                       backoff, emit, verify) for d in workers))
        # "any": a device that failed late hands its job back after the others finished: run again.
        workers = [d for d in devices if d.name in live and queues[d.name]] if mode == "any" else []
    if mode == "any":  # every device failed with work left: list it
        leftover = queues[devices[0].name] if devices else []
        for job in leftover:
            merged["errors"].append({"target": job.target.label, "runtime": job.target.runtime, "threads": job.threads,
                                     "device": None, "error": "no device of the pool is left to measure it"})
    return merged


def run_on_devices(
    devices: list[Device],
    targets: list,
    threads: list[int | None] | None,
    batch: int = 1,
    timing=None,
    mode: str = "each",
    retries: int = 2,
    backoff: float = 1.0,
    on_event: Callable[[PoolEvent], None] | None = None,
    verify: bool = True,
) -> dict:
    """Every target x thread count on the devices; ``threads=None`` uses each device's own list.

    ``verify``: recompute each artifact's parity on each device (edgecls.bench.verify) from the
    inputs and PyTorch outputs its export folder keeps.
    """
    from edgecls.bench.stats import TimingConfig
    from edgecls.errors import InvalidArgumentError

    if mode not in ("each", "any"):
        raise InvalidArgumentError(f"device pool mode must be 'each' or 'any', got {mode!r}")
    if not devices:
        raise InvalidArgumentError("no device given")
    missing = [t.label for t in targets if not t.path]
    if missing:
        raise InvalidArgumentError(f"{missing[0]} is a model name: devices run artifacts only (export it first)")
    timing = timing or TimingConfig()

    def threads_for(device: Device) -> list:
        return list(threads) if threads else (list(device.threads) or [None])

    return asyncio.run(_run(devices, targets, threads_for, batch, timing, mode, retries, backoff,
                            on_event or (lambda event: None), verify))


def per_device(results: dict) -> list[tuple[str, dict]]:
    """Merged pool results split into one local-looking results set per device that answered."""
    out = []
    for name, entry in results.get("devices", {}).items():
        if not entry.get("description"):
            continue
        out.append((name, {**results, "device": entry["description"],
                           "results": [r for r in results["results"] if r.get("device_name") == name],
                           "errors": [e for e in results["errors"] if e.get("device") == name]}))
    return out
