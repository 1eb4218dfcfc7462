"""Benchmark suites: TOML files listing models x formats x precisions x threads.

``run_suite`` exports what is missing (through ``edgecls.export.pipeline``, one folder per model
under the suite's export folder), benchmarks every artifact plus the PyTorch eager baseline, and
writes ``<results>/<device>/<date>.json``. A suite file looks like::

    name = "quick"
    description = "a few small models"
    models = ["squeezenet1_1", { name = "mobilevitv2_050", resolution = 224 }]   # or "*"
    formats = ["onnx", "openvino", "tflite"]
    precisions = ["fp32", "int8"]
    threads = [1, "max"]          # "max": every usable core of the machine running the suite
    batch = 1
    torch_baseline = true
    weights = "auto"              # "auto" (built-in where a model has them), "random", "pretrained"

    [timing]                      # the options of `edgecls bench`
    warmup_runs = 3
    warmup_seconds = 0.2
    min_runs = 20
    min_seconds = 1.0
    max_seconds = 20.0

    [export]
    dir = "../exports"            # relative to the suite file
    calib = "builtin"
    calib_size = 100
    timeout = 1800

    [output]
    dir = "../results"            # relative to the suite file

    devices = ["pi4", "graviton"] # optional: measure on these devices (names from devices_file) instead
    devices_file = "../devices.toml"  # relative to the suite file (the default)
    device_pool = "each"          # "each": every measurement on every device; "any": once, on a free device

Every key is checked: a typo is an error naming the key and the allowed ones, not a silently
ignored setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError, InvalidArgumentError
from edgecls.formats import PRECISIONS, export_formats

TOP_KEYS = {"name", "description", "models", "formats", "precisions", "threads", "batch", "torch_baseline",
            "weights", "resolution", "timing", "export", "output", "devices", "devices_file", "device_pool"}
TIMING_KEYS = {"warmup_runs", "warmup_seconds", "min_runs", "min_seconds", "max_seconds"}
EXPORT_KEYS = {"dir", "calib", "calib_size", "timeout", "target"}
OUTPUT_KEYS = {"dir"}
MODEL_KEYS = {"name", "resolution", "weights", "formats", "precisions"}
WEIGHT_CHOICES = ("auto", "random", "pretrained")
FORMATS = tuple(export_formats())


@dataclass
class SuiteModel:
    name: str
    resolution: int | None = None  # None: native
    weights: str = "auto"
    formats: list[str] = field(default_factory=list)
    precisions: list[str] = field(default_factory=list)


@dataclass
class Suite:
    path: Path
    name: str
    description: str
    models: list[SuiteModel]
    threads: list[int | str]
    batch: int
    torch_baseline: bool
    timing: Any  # TimingConfig
    export_dir: Path
    results_dir: Path
    calib: str = "builtin"
    calib_size: int = 100
    export_timeout: float = 1800.0
    export_target: str | None = None
    devices: list[str] = field(default_factory=list)  # names or ssh:// URLs; empty: this machine
    devices_file: Path | None = None
    device_pool: str = "each"

    def thread_counts(self) -> list[int]:
        from edgecls.bench.device import describe_device

        cores = describe_device().usable_cores
        counts = [cores if t == "max" else int(t) for t in self.threads]
        return list(dict.fromkeys(counts))

    def size(self) -> int:
        """Number of measurements the suite asks for."""
        per_thread = sum(len(m.formats) * len(m.precisions) + (1 if self.torch_baseline else 0) for m in self.models)
        return per_thread * len(self.thread_counts())


def _error(path: Path, message: str) -> EdgeclsError:
    return EdgeclsError(f"suite {path.name}: {message}")


def _check_keys(path: Path, table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        place = f" in [{where}]" if where else ""
        raise _error(path, f"unknown key '{unknown[0]}'{place} (allowed: {', '.join(sorted(allowed))})")


def _string_list(path: Path, value: Any, key: str, choices: tuple[str, ...]) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise _error(path, f"'{key}' must be a non-empty list of strings from {', '.join(choices)}")
    out = []
    for item in items:
        key_value = item.strip().lower()
        if key_value not in choices:
            raise _error(path, f"unknown {key.rstrip('s')} '{item}' in '{key}' (use {', '.join(choices)})")
        out.append(key_value)
    return list(dict.fromkeys(out))


def _positive_int(path: Path, value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _error(path, f"'{key}' must be a positive integer, got {value!r}")
    return value


def _resolution(path: Path, value: Any, key: str) -> int | None:
    if value is None or value == "native":
        return None
    return _positive_int(path, value, key)


def _weights(path: Path, value: Any, key: str) -> str:
    if value not in WEIGHT_CHOICES:
        raise _error(path, f"'{key}' must be one of {', '.join(WEIGHT_CHOICES)}, got {value!r}")
    return value


def load_suite(path: Path, check_models: bool = True, base: Path | None = None) -> Suite:
    """Parse and validate a suite file; ``check_models`` resolves model names (needs the registry);
    relative ``dir`` settings start from ``base`` (default: the suite file's folder)."""
    from edgecls.bench.stats import TimingConfig
    from edgecls.resources import read_toml

    path = Path(path)
    data = read_toml(path, "suite file")
    _check_keys(path, data, TOP_KEYS, "")
    for table, keys in (("timing", TIMING_KEYS), ("export", EXPORT_KEYS), ("output", OUTPUT_KEYS)):
        if table in data:
            if not isinstance(data[table], dict):
                raise _error(path, f"'{table}' must be a table ([{table}])")
            _check_keys(path, data[table], keys, table)
    if "models" not in data:
        raise _error(path, "no 'models' list: name the models to benchmark, or \"*\" for all")

    formats = _string_list(path, data.get("formats", list(FORMATS)), "formats", FORMATS)
    precisions = _string_list(path, data.get("precisions", ["fp32"]), "precisions", PRECISIONS)
    default_weights = _weights(path, data.get("weights", "auto"), "weights")
    default_resolution = _resolution(path, data.get("resolution"), "resolution")

    raw_models = data["models"]
    if raw_models == "*" or raw_models == ["*"]:
        from edgecls.models import list_models

        raw_models = list_models()
    if not isinstance(raw_models, list) or not raw_models:
        raise _error(path, "'models' must be a non-empty list of names (or tables with a name), or \"*\"")
    models = []
    for index, item in enumerate(raw_models):
        where = f"models[{index}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _error(path, f"{where} must be a model name or a table with a 'name'")
        _check_keys(path, item, MODEL_KEYS, where)
        name = item["name"]
        if check_models:
            from edgecls.models import get_model_info

            info = get_model_info(name)  # UnknownModelError with suggestions
            name = info.name
        resolution = _resolution(path, item.get("resolution", default_resolution), f"{where}.resolution")
        if check_models and resolution is not None:
            info.check_resolution(resolution)
        models.append(SuiteModel(
            name=name, resolution=resolution, weights=_weights(path, item.get("weights", default_weights), f"{where}.weights"),
            formats=_string_list(path, item["formats"], f"{where}.formats", FORMATS) if "formats" in item else formats,
            precisions=(_string_list(path, item["precisions"], f"{where}.precisions", PRECISIONS)
                        if "precisions" in item else precisions),
        ))

    threads_raw = data.get("threads", [1])
    threads_raw = threads_raw if isinstance(threads_raw, list) else [threads_raw]
    threads: list[int | str] = []
    for value in threads_raw:
        if value == "max":
            threads.append("max")
        else:
            threads.append(_positive_int(path, value, "threads"))
    if not threads:
        raise _error(path, "'threads' must list at least one thread count")

    torch_baseline = data.get("torch_baseline", True)
    if not isinstance(torch_baseline, bool):
        raise _error(path, f"'torch_baseline' must be true or false, got {torch_baseline!r}")
    try:
        timing = TimingConfig(**data.get("timing", {}))
    except InvalidArgumentError as exc:
        raise _error(path, f"[timing] {exc}") from None
    export = data.get("export", {})
    output = data.get("output", {})
    base = Path(base) if base is not None else path.resolve().parent
    devices = data.get("devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) and d for d in devices):
        raise _error(path, "'devices' must be a list of device names (from devices_file) or ssh:// URLs")
    if data.get("device_pool", "each") not in ("each", "any"):
        raise _error(path, f"'device_pool' must be \"each\" or \"any\", got {data['device_pool']!r}")
    return Suite(
        path=path,
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        models=models,
        threads=threads,
        batch=_positive_int(path, data.get("batch", 1), "batch"),
        torch_baseline=torch_baseline,
        timing=timing,
        export_dir=(base / export.get("dir", "../exports")).resolve(),
        results_dir=(base / output.get("dir", "../results")).resolve(),
        calib=str(export.get("calib", "builtin")),
        calib_size=_positive_int(path, export.get("calib_size", 100), "export.calib_size"),
        export_timeout=float(export.get("timeout", 1800)),
        export_target=export.get("target"),
        devices=devices,
        devices_file=(base / data.get("devices_file", "../devices.toml")).resolve(),
        device_pool=data.get("device_pool", "each"),
    )


# ---------------------------------------------------------------------------------------------
# Running


def _model_folder(suite: Suite, model: SuiteModel, exports_dir: Path) -> Path:
    suffix = f"_r{model.resolution}" if model.resolution else ""
    return exports_dir / f"{model.name}{suffix}"


def _native_resolution(model: SuiteModel) -> int | None:
    if model.resolution:
        return model.resolution
    try:
        from edgecls.models import get_model_info

        return get_model_info(model.name).resolution
    except Exception:  # noqa: BLE001 - without the registry any resolution of the folder matches
        return None


def _find(manifest, suite: Suite, model: SuiteModel, fmt: str, precision: str, passed: bool):
    """The manifest entry of this suite's artifact (model, format, precision, resolution, batch)."""
    return manifest.find(fmt, precision, model=model.name, resolution=_native_resolution(model), batch=suite.batch,
                         layout="NCHW", passed=passed)


def _missing(suite: Suite, model: SuiteModel, folder: Path) -> tuple[list[tuple[str, str]], dict[tuple[str, str], str]]:
    """(format, precision) pairs with no entry yet, and those whose earlier export failed (with why)."""
    from edgecls.manifest import Manifest, read_manifest

    try:
        manifest = read_manifest(folder, missing_ok=True)
    except EdgeclsError:
        manifest = Manifest(folder)  # damaged: export everything again
    missing, failed = [], {}
    for fmt in model.formats:
        for precision in model.precisions:
            entry = _find(manifest, suite, model, fmt, precision, passed=False)
            if entry is not None and entry.passed and (folder / entry.file).is_file():
                continue
            if entry is not None:
                failed[(fmt, precision)] = str(entry.error or entry.status)
            else:
                missing.append((fmt, precision))
    return missing, failed


def _targets(suite: Suite, model: SuiteModel, folder: Path) -> list:
    """The suite's artifacts of ``model`` that its export folder holds, verified against their sha256."""
    from edgecls.bench.targets import entry_target
    from edgecls.manifest import read_manifest, verify_entry

    try:
        manifest = read_manifest(folder, missing_ok=True)
    except EdgeclsError:
        return []
    targets = []
    for fmt in model.formats:
        for precision in model.precisions:
            entry = _find(manifest, suite, model, fmt, precision, passed=True)
            if entry is not None and (folder / entry.file).is_file():
                verify_entry(folder, entry)
                targets.append(entry_target(folder, entry))
    return targets


def _export(suite: Suite, model: SuiteModel, folder: Path, pairs: list[tuple[str, str]], log) -> None:
    from edgecls.export.pipeline import ExportConfig, run_export
    from edgecls.models import get_model_info

    info = get_model_info(model.name)
    pretrained = model.weights == "pretrained" or (model.weights == "auto" and info.pretrained is not None)
    formats = list(dict.fromkeys(f for f, _ in pairs))
    precisions = list(dict.fromkeys(p for _, p in pairs))
    config = ExportConfig(model=model.name, pretrained=pretrained, random_weights=not pretrained, formats=formats,
                          precisions=precisions,
                          calib=suite.calib, calib_size=suite.calib_size, resolution=model.resolution,
                          batch=suite.batch, out=folder, timeout=suite.export_timeout, target=suite.export_target)
    run_export(config, log=log)


def results_path(results_dir: Path, device_slug: str, when: datetime | None = None) -> Path:
    """``<results>/<device>/<YYYY-MM-DD>.json``, numbered when that day already has one."""
    when = when or datetime.now()
    folder = Path(results_dir) / device_slug
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{when:%Y-%m-%d}.json"
    number = 2
    while path.exists():
        path = folder / f"{when:%Y-%m-%d}-{number}.json"
        number += 1
    return path


def run_suite(
    suite: Suite,
    results_dir: Path | None = None,
    exports_dir: Path | None = None,
    export_missing: bool = True,
    console=None,
    export_only: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> Path | None:
    """Export what is missing, benchmark everything, write the results JSON; returns its path.

    ``export_only`` stops after the exports (returns None): prepare the artifacts on a build
    machine, or while other work runs, and time them later with ``export_missing=False``.
    ``executor="ray"`` runs the exports as Ray tasks (edgecls.suite_ray); benchmarks never run there.
    """
    if executor not in ("local", "ray"):
        raise InvalidArgumentError(f"executor must be 'local' or 'ray', got {executor!r}")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgecls.bench.device import describe_device
    from edgecls.bench.harness import benchmark_target, new_results
    from edgecls.bench.targets import baseline_target

    console = console or Console(stderr=True)
    exports_dir = Path(exports_dir) if exports_dir else suite.export_dir
    results_dir = Path(results_dir) if results_dir else suite.results_dir
    threads = suite.thread_counts()
    results = new_results(suite.timing, batch=suite.batch,
                          suite={"name": suite.name, "description": suite.description, "file": str(suite.path)})

    # Exports first (each may take minutes), so the timed part runs on a machine doing nothing else.
    if executor == "ray" and export_missing:
        from edgecls.suite_ray import export_on_ray

        jobs = [(m, _model_folder(suite, m, exports_dir)) for m in suite.models]
        export_on_ray(suite, [(m, f, _missing(suite, m, f)[0]) for m, f in jobs], console, address=ray_address)
    plan: list[tuple[SuiteModel, list]] = []
    for model in suite.models:
        folder = _model_folder(suite, model, exports_dir)
        missing, failed = _missing(suite, model, folder)
        if missing and export_missing:
            console.print(f"[bold]export[/bold] {model.name}: {', '.join(f'{f} {p}' for f, p in missing)}")
            try:
                _export(suite, model, folder, missing, log=lambda message: console.print(f"  {message}"))
            except EdgeclsError as exc:
                console.print(f"  [red]export failed[/red]: {exc}")
            missing, failed = _missing(suite, model, folder)
        for (fmt, precision), why in sorted(failed.items()):
            results["errors"].append({"target": f"{model.name} {fmt} {precision}", "runtime": fmt, "threads": None,
                                      "error": f"export failed: {why}"})
        for fmt, precision in missing:
            results["errors"].append({"target": f"{model.name} {fmt} {precision}", "runtime": fmt, "threads": None,
                                      "error": "not exported" + ("" if export_missing else " (--no-export)")})
        try:
            targets = _targets(suite, model, folder)
        except EdgeclsError as exc:  # an artifact that fails its sha256 is not timed
            results["errors"].append({"target": model.name, "runtime": None, "threads": None, "error": str(exc)})
            targets = []
        if suite.torch_baseline:
            targets.append(baseline_target(model.name, resolution=model.resolution))
        plan.append((model, targets))
    if export_only:
        return None
    if suite.devices:
        from edgecls.suite_devices import bench_plan_on_devices, pool_folder_name

        pooled = bench_plan_on_devices(suite, [t for _, targets in plan for t in targets], results, console)
        out = results_path(results_dir, pool_folder_name(list(pooled["devices"])))
        out.write_text(json.dumps(pooled, indent=1))
        return out

    total = sum(len(targets) for _, targets in plan) * len(threads)
    device = describe_device()
    console.print(f"benchmarking {total} measurements on {device.cpu} ({device.usable_cores} cores), "
                  f"threads {', '.join(map(str, threads))}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("bench", total=total)
        for model, targets in plan:
            for target in targets:
                for n in threads:
                    label = f"{model.name} {target.runtime} {target.precision} x{n}"
                    progress.update(task, description=label)
                    try:
                        record = benchmark_target(target, n, suite.batch, suite.timing)
                        results["results"].append(record)
                        progress.console.print(f"  {label}: p50 {record['latency']['p50_ms']:.2f} ms")
                    except Exception as exc:  # noqa: BLE001 - one failure must not lose a suite's results
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        results["errors"].append({"target": target.label, "runtime": target.runtime,
                                                  "threads": n, "error": first})
                        progress.console.print(f"  [red]{label}: {first}[/red]")
                    progress.advance(task)
    out = results_path(results_dir, device.slug)
    out.write_text(json.dumps(results, indent=1))
    return out
