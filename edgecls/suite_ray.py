"""A suite's exports as Ray tasks: ``edgecls suite run SUITE --executor ray``.

Exports are the slow, embarrassingly parallel half of a suite (minutes per model, independent of
each other), so each model's missing artifacts become one Ray task taking one CPU; Ray places them
over the cluster's cores. Benchmarks are not run on Ray: they stay one at a time per device (a
measurement must not share its machine), after every export has finished.

Local (tests, one machine): no address, Ray starts a private cluster with this machine's usable
cores. Several machines::

    head$    ray start --head --port 6379
    worker$  ray start --address HEAD:6379          # on every other machine
    head$    edgecls suite run benchmarks/suites/zoo.toml --executor ray --ray-address HEAD:6379

With an address, this checkout's edgecls package is shipped to the workers (Ray ``py_modules``);
the workers need edgecls's export dependencies installed, and the suite's export folder must be
on storage every node mounts at the same path (NFS or similar), since each task writes its model's
folder in place, as a local export does.
"""

from __future__ import annotations

import os
from pathlib import Path


def _export_task(suite, model, folder: str, pairs: list) -> dict:
    """Runs on a Ray worker: one model's missing (format, precision) pairs, as a local export."""
    import socket

    from edgecls.errors import EdgeclsError
    from edgecls.suite import _export

    messages: list[str] = []
    error = None
    try:
        _export(suite, model, Path(folder), pairs, log=messages.append)
    except EdgeclsError as exc:
        error = str(exc)
    return {"model": model.name, "pid": os.getpid(), "host": socket.gethostname(), "log": messages, "error": error}


def _init(ray, address: str | None, cores: int) -> None:
    from edgecls.errors import EdgeclsError

    import edgecls

    # Ray waits a fixed 30 s for its own node to register; a busy machine can miss that once.
    for attempt in (1, 2):
        try:
            if address:
                ray.init(address=address, runtime_env={"py_modules": [str(Path(edgecls.__file__).parent)]},
                         log_to_driver=False)
            else:
                ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
            return
        except ConnectionError as exc:
            raise EdgeclsError(f"no Ray cluster at {address}: {exc} (start one with `ray start --head`)") from None
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception for a node that did not start
            ray.shutdown()
            if attempt == 2:
                where = f"at {address}" if address else "on this machine"
                raise EdgeclsError(f"Ray did not start {where}: {str(exc).splitlines()[0]}") from None


def export_on_ray(suite, jobs: list[tuple], console, address: str | None = None) -> list[dict]:
    """``jobs``: (SuiteModel, folder, missing pairs). Returns one record per task (model, pid, host, error)."""
    try:
        import ray
    except ImportError:
        from edgecls.errors import MissingDependencyError

        raise MissingDependencyError("--executor ray needs Ray: pip install 'edgecls[ray]'") from None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgecls.bench.device import describe_device

    jobs = [job for job in jobs if job[2]]
    if not jobs:
        return []
    started_here = not ray.is_initialized()
    if started_here:
        _init(ray, address, describe_device().usable_cores)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_export_task)
        pending = {task.remote(suite, model, str(folder), pairs): model.name for model, folder, pairs in jobs}
        console.print(f"[bold]export[/bold] {len(pending)} model(s) on Ray "
                      f"({int(ray.cluster_resources().get('CPU', 0))} CPUs)")
        records = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            bar = progress.add_task("ray exports", total=len(pending))
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                name = pending.pop(done[0])
                try:
                    record = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - a worker that died: that model's export failed
                    record = {"model": name, "pid": None, "host": None, "log": [], "error": f"Ray task failed: {exc}"}
                records.append(record)
                where = f"pid {record['pid']} on {record['host']}" if record["pid"] else "a lost worker"
                status = f"[red]failed: {record['error']}[/red]" if record["error"] else "done"
                progress.console.print(f"  {name}: {status} ({where})")
                progress.advance(bar)
        return records
    finally:
        if started_here:
            ray.shutdown()
