"""Benchmark targets, each measurement in a fresh subprocess.

A target is an artifact file (.onnx, .xml, .tflite: the runtime follows from the suffix), a model
name (the PyTorch eager baseline) or an export folder (every artifact its manifest.json lists).

Why a subprocess per measurement: peak RSS is a per-process high-water mark, and runtimes keep
thread pools, allocators and caches alive once imported. A fresh interpreter per (artifact,
threads) makes the peak RSS that artifact's own and keeps one runtime from slowing or padding
another. The child reports its peak RSS from the OS (see ``_peak_rss_self``); the parent adds
what needs no runtime: file size, MACs, GFLOP/s, the share of the CPU's fp32 peak, the device.

Run as ``python -m edgecls.bench.harness SPEC.json OUT.json`` it is the child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from edgecls import errors
from edgecls.bench.stats import PERCENTILE_RULE, TimingConfig, measure, summarize
from edgecls.errors import EdgeclsError, InvalidArgumentError

SCHEMA = "edgecls-bench/1"
FORMAT_OF_SUFFIX = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite", ".pte": "executorch",
                    ".param": "ncnn", ".mlpackage": "coreml"}
RUNTIME_OF_FORMAT = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert", "executorch": "executorch", "ncnn": "ncnn",
                     "coreml": "coreml",
                     "torch": "torch"}
# The package each runtime imports, timed apart from session creation.
RUNTIME_PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert",
                   "executorch": "executorch.runtime", "ncnn": "ncnn", "coreml": "coremltools",
                   "torch": "torch"}
MANIFEST = "manifest.json"


@dataclass
class Target:
    """One thing to benchmark, with what is known about it before it runs."""

    label: str  # how the user named it
    format: str  # "onnx", "openvino", "tflite" or "torch"
    path: str | None = None  # the artifact file; None for the torch baseline
    model: str | None = None  # edgecls model name, when the manifest, metadata or user names it
    precision: str | None = None
    resolution: int | None = None
    weights: str | None = None  # torch baseline only
    manifest_entry: dict = field(default_factory=dict)  # parity, status, accuracy, macs...
    export_dir: str | None = None

    @property
    def runtime(self) -> str:
        return RUNTIME_OF_FORMAT[self.format]


# ---------------------------------------------------------------------------------------------
# Resolving what the user typed


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise EdgeclsError(f"{folder} has no {MANIFEST}: pass artifact files, or an export folder")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EdgeclsError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise EdgeclsError(f"{path} has no 'artifacts' list: is it an edgecls export folder?")
    return manifest


def _manifest_model(manifest: dict) -> tuple[str | None, int | None, dict]:
    """(model name, resolution, extra fields) from a manifest, whatever nesting it uses."""
    model = manifest.get("model")
    extra: dict = {}
    if isinstance(model, dict):
        extra = {k: v for k, v in model.items() if k in ("macs", "params")}
        resolution = model.get("resolution") or manifest.get("resolution")
        model = model.get("name")
    else:
        resolution = manifest.get("resolution")
    for key in ("macs", "params"):
        if key in manifest and key not in extra:
            extra[key] = manifest[key]
    return model, resolution, extra


def _entry_resolution(entry: dict) -> int | None:
    value = entry.get("resolution") or (entry.get("preprocessing") or {}).get("resolution")
    return int(value) if isinstance(value, int) else None


def targets_from_manifest(folder: Path, only_ok: bool = True) -> list[Target]:
    folder = Path(folder)
    manifest = read_manifest(folder)
    model, resolution, extra = _manifest_model(manifest)
    targets = []
    for entry in manifest["artifacts"]:
        if not isinstance(entry, dict) or "file" not in entry:
            continue
        if not entry["file"] or (only_ok and entry.get("status", "passed") not in ("passed", "ok")):
            continue  # the pipeline keeps failed exports in the manifest, without a file
        path = folder / entry["file"]
        fmt = entry.get("format") or FORMAT_OF_SUFFIX.get(path.suffix.lower())
        if fmt not in RUNTIME_OF_FORMAT or not path.is_file():
            continue
        merged = {**extra, **entry}
        targets.append(Target(label=str(path), format=fmt, path=str(path), model=entry.get("model") or model,
                              precision=entry.get("precision"), resolution=_entry_resolution(entry) or resolution,
                              manifest_entry=merged, export_dir=str(folder)))
    if not targets:
        raise EdgeclsError(f"the manifest in {folder} lists no artifact file that exists")
    return targets


def _artifact_metadata(path: Path) -> dict:
    """Model name, precision and resolution that the artifact itself records, if any."""
    meta: dict[str, Any] = {}
    try:
        if path.suffix.lower() == ".onnx":
            from edgecls.runtime.graph import onnx_metadata

            raw = onnx_metadata(path)
        elif path.suffix.lower() == ".xml":
            raw = _openvino_rt_info(path)
        elif path.suffix.lower() in (".pte", ".param"):  # ExecuTorch / NCNN keep it in a sidecar JSON
            from edgecls.runtime.ncnn import read_sidecar

            raw = {k: str(v) for k, v in read_sidecar(path).items() if k != "labels"}
        else:
            raw = {}
    except (EdgeclsError, errors.MissingDependencyError):
        raw = {}
    for key, value in raw.items():
        short = key.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
        if short in ("model", "model_name", "name") and "model" not in meta:
            meta["model"] = value
        elif short == "precision":
            meta["precision"] = value
        elif short == "resolution" and str(value).isdigit():
            meta["resolution"] = int(value)
        elif short == "macs" and str(value).isdigit():
            meta["macs"] = int(value)
    return meta


def _openvino_rt_info(path: Path) -> dict[str, str]:
    """Flat key -> value of the IR's <rt_info> (read as XML, so no openvino import)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {}
    rt_info = root.find("rt_info")
    out: dict[str, str] = {}
    if rt_info is None:
        return out

    def walk(node, prefix: str) -> None:
        for child in node:
            key = f"{prefix}{child.tag}"
            if "value" in child.attrib:
                out[key] = child.attrib["value"]
            walk(child, key + "/")

    walk(rt_info, "")
    return out


def _sibling_manifest_entry(path: Path) -> tuple[dict, str | None, int | None]:
    """The manifest entry of ``path`` when it sits in an export folder."""
    manifest_path = path.parent / MANIFEST
    if not manifest_path.is_file():
        return {}, None, None
    try:
        manifest = read_manifest(path.parent)
    except EdgeclsError:
        return {}, None, None
    model, resolution, extra = _manifest_model(manifest)
    for entry in manifest["artifacts"]:
        if isinstance(entry, dict) and entry.get("file") and (path.parent / entry["file"]).resolve() == path.resolve():
            return {**extra, **entry}, entry.get("model") or model, _entry_resolution(entry) or resolution
    return extra, model, resolution


def resolve_targets(items: list[str], weights: str | None = None, resolution: int | None = None) -> list[Target]:
    """Targets for what the user typed: files, export folders, model names (torch eager)."""
    if not items:
        raise InvalidArgumentError("nothing to benchmark: give an artifact file, an export folder or a model name")
    targets: list[Target] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            targets.extend(targets_from_manifest(path))
            continue
        suffix = path.suffix.lower()
        if path.is_file():
            if suffix not in FORMAT_OF_SUFFIX:
                raise EdgeclsError(
                    f"cannot tell the format of {item}: expected one of {', '.join(FORMAT_OF_SUFFIX)}"
                )
            entry, model, res = _sibling_manifest_entry(path)
            meta = _artifact_metadata(path)
            targets.append(Target(label=item, format=FORMAT_OF_SUFFIX[suffix], path=str(path),
                                  model=model or meta.get("model"),
                                  precision=entry.get("precision") or meta.get("precision"),
                                  resolution=resolution or res or meta.get("resolution"),
                                  manifest_entry={**({"macs": meta["macs"]} if "macs" in meta else {}), **entry},
                                  export_dir=str(path.parent) if entry else None))
            continue
        if suffix in FORMAT_OF_SUFFIX or os.sep in item or "/" in item:
            raise EdgeclsError(f"artifact not found: {item}")
        from edgecls.models.registry import resolve_name

        try:
            name = resolve_name(item)  # UnknownModelError with suggestions for a typo
        except ImportError:
            raise errors.MissingDependencyError(
                f"'{item}' is not a file, and benchmarking a model name runs PyTorch: pip install 'edgecls[export]'"
            ) from None
        targets.append(Target(label=item, format="torch", model=name, precision="fp32",
                              resolution=resolution, weights=weights))
    return targets


def parse_threads(text: str | int | list | None) -> list[int | None]:
    """'1,2' -> [1, 2]; None or '' -> [None] (the runtime's default)."""
    if text is None or text == "":
        return [None]
    parts = text if isinstance(text, list) else [p for p in str(text).replace(" ", "").split(",") if p]
    out: list[int | None] = []
    for part in parts:
        try:
            value = int(part)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"threads must be positive integers like '1,2', got {text!r}") from None
        if value < 1:
            raise InvalidArgumentError(f"threads must be positive integers like '1,2', got {text!r}")
        out.append(value)
    return out or [None]


# ---------------------------------------------------------------------------------------------
# The child: open, prepare, time, report


def _peak_rss_self() -> tuple[int, str]:
    """(peak RSS of this process in bytes, where it came from).

    Linux: VmHWM of /proc/self/status, the high-water mark of this process's own address space.
    Not ru_maxrss: Linux carries the parent's high-water mark across fork/exec into ru_maxrss, so
    a child spawned by a parent holding torch would report torch's RSS as its own.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "VmHWM (/proc/self/status)"
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (peak if sys.platform == "darwin" else peak * 1024), "getrusage ru_maxrss"
    except ImportError:  # Windows
        import psutil

        return int(psutil.Process().memory_info().peak_wset), "psutil peak_wset"


def _input_shape(spec, batch: int, resolution: int | None) -> tuple[int, ...]:
    shape = list(spec.shape)
    if len(shape) != 4:
        raise EdgeclsError(f"expected a 4-D image input, the artifact's input is {tuple(spec.shape)}")
    if shape[0] is None:
        shape[0] = batch
    elif shape[0] != batch:
        raise InvalidArgumentError(
            f"the artifact has a static batch of {shape[0]}, not {batch}: export with that batch or a dynamic one"
        )
    spatial = (1, 2) if spec.layout == "NHWC" else (2, 3)
    for axis in spatial:
        if shape[axis] is None:
            shape[axis] = resolution or 224
    channel_axis = 3 if spec.layout == "NHWC" else 1
    if shape[channel_axis] is None:
        shape[channel_axis] = 3
    return tuple(int(d) for d in shape)


def _open_runner(target: dict, threads: int | None, batch: int):
    from edgecls.runtime.registry import open_runner, runner_class

    if target["format"] == "torch":
        cls = runner_class("torch")
        return cls(target["model"], threads=threads, weights=target.get("weights"),
                   resolution=target.get("resolution"), batch=batch)
    return open_runner(Path(target["path"]), threads=threads, runtime=RUNTIME_OF_FORMAT[target["format"]])


def child_measure(spec: dict) -> dict:
    """Everything the child measures for one (target, threads, batch)."""
    import gc
    import importlib

    import numpy as np

    baseline_rss, _ = _peak_rss_self()
    target, threads, batch = spec["target"], spec["threads"], spec["batch"]
    config = TimingConfig(**spec["timing"])
    runtime = RUNTIME_OF_FORMAT[target["format"]]

    t0 = time.perf_counter_ns()
    try:
        importlib.import_module(RUNTIME_PACKAGE[runtime])
    except ImportError:
        pass  # the runner raises MissingDependencyError naming the extra to install
    import_ns = time.perf_counter_ns() - t0

    t0 = time.perf_counter_ns()
    runner = _open_runner(target, threads, batch)
    init_ns = time.perf_counter_ns() - t0

    input_spec = runner.input_spec
    shape = _input_shape(input_spec, batch, target.get("resolution"))
    # Fixed seed: every runtime sees the same input for the same shape.
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    prepared = runner.prepare(x)
    # As timeit does: a collection pause inside a timed run measures Python, not the runtime.
    gc.collect()
    gc.disable()
    try:
        timings = measure(runner.infer, prepared, config)
    finally:
        gc.enable()
    logits = runner.to_float(runner.infer(prepared))
    return {
        "runtime_version": runner.version(),
        "input": {"name": input_spec.name, "shape": list(shape), "dtype": input_spec.dtype,
                  "layout": input_spec.layout},
        "output_shape": list(np.shape(logits)),
        "output_finite": bool(np.isfinite(logits).all()),
        "import_ms": import_ns / 1e6,
        "init_ms": init_ns / 1e6,
        "first_inference_ms": timings.first_ns / 1e6,
        "warmup_runs": timings.warmup_runs,
        "warmup_ms": timings.warmup_ns / 1e6,
        "timed_seconds": timings.timed_ns / 1e9,
        "stopped_by": timings.stopped_by,
        "raw_ns": timings.times_ns,
        "baseline_rss_bytes": baseline_rss,
        "peak_rss": _peak_rss_self(),
    }


def _child_main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = {"ok": child_measure(spec)}
    except EdgeclsError as exc:
        result = {"error": {"type": type(exc).__name__, "message": str(exc), "user": True}}
    except Exception as exc:  # noqa: BLE001 - reported to the parent with its traceback
        import traceback

        result = {"error": {"type": "crash", "message": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc()}}
    Path(out_path).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------
# The parent: run the child, add what needs no runtime


class BenchmarkCrash(RuntimeError):
    """The runtime failed in a way that is not the user's doing (a bug or a runtime crash)."""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child must import this same edgecls, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _run_child(spec: dict, timeout: float) -> tuple[dict, str]:
    """(child result, tail of its stderr)."""
    with tempfile.TemporaryDirectory(prefix="edgecls-bench-") as tmp:
        spec_path, out_path, err_path = (Path(tmp) / n for n in ("spec.json", "out.json", "stderr.txt"))
        spec_path.write_text(json.dumps(spec))
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edgecls.bench.harness", str(spec_path), str(out_path)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=_child_env(),
            )
            timed_out = threading.Event()

            def kill() -> None:
                timed_out.set()
                proc.kill()

            killer = threading.Timer(timeout, kill)
            killer.start()
            try:
                proc.wait()
            finally:
                killer.cancel()
        stderr_tail = err_path.read_text(errors="replace")[-4000:]
        if out_path.is_file():
            return json.loads(out_path.read_text()), stderr_tail
        last = next((line for line in reversed(stderr_tail.splitlines()) if line.strip()), "no output")
        if timed_out.is_set():
            reason = f"killed after {timeout:.0f} s"
        elif proc.returncode is not None and proc.returncode < 0:
            reason = f"killed by signal {-proc.returncode}"
        else:
            reason = f"exit code {proc.returncode}"
        return {"crash": f"{reason}: {last[:300]}"}, stderr_tail


def _raise_child_error(error: dict, target: Target) -> None:
    cls = getattr(errors, error.get("type", ""), None)
    if isinstance(cls, type) and issubclass(cls, EdgeclsError):
        raise cls(error["message"])
    if error.get("user"):
        raise EdgeclsError(error["message"])
    raise BenchmarkCrash(
        f"benchmarking {target.label} with {target.runtime} failed: {error.get('message')}\n"
        f"{error.get('traceback', '')}"
    )


def artifact_bytes(path: Path) -> int:
    """Size on disk of an artifact with its side files (OpenVINO .bin, ONNX external data)."""
    path = Path(path)
    if path.is_dir():  # Core ML's .mlpackage folder
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    suffix = path.suffix.lower()
    if suffix in (".xml", ".param"):  # OpenVINO and NCNN weights
        sides = [path.with_suffix(".bin")]
    elif suffix == ".onnx":
        sides = [Path(str(path) + ".data"), path.with_suffix(".data")]
    else:
        sides = []
    return path.stat().st_size + sum(side.stat().st_size for side in set(sides) if side.is_file())


_MACS_CACHE: dict[tuple, tuple[int | None, str | None]] = {}


def model_macs(target: Target) -> tuple[int | None, str | None]:
    """(MACs per image, where the figure came from).

    Preference: the manifest (written by the exporter from the torch model); the edgecls model
    itself when torch is importable; the artifact's own graph; an ONNX sibling in its export
    folder. Runtime-only installs land on a graph count, which matches the torch count for
    conv/linear/matmul.
    """
    if target.manifest_entry.get("macs"):
        return int(target.manifest_entry["macs"]), "manifest"
    key = (target.model, target.resolution, target.path)
    if key in _MACS_CACHE:
        return _MACS_CACHE[key]
    result: tuple[int | None, str | None] = (None, None)
    if target.model:
        try:
            import torch

            from edgecls.models import get_model_info
            from edgecls.profile import profile_model

            info = get_model_info(target.model)
            # Random init on the CPU, not the meta device: profile_model feeds a CPU tensor, which
            # some layers (hardswish, attention) refuse to mix with meta weights.
            with torch.no_grad():
                model = info.builder(num_classes=info.num_classes)
            model.edgecls_info = info
            macs = profile_model(model, resolution=target.resolution or info.resolution).macs
            result = (macs, f"edgecls model {info.name} (torch profile)")
        except ImportError:
            pass
        except Exception:  # noqa: BLE001 - a meta-device quirk must not lose the latency figures
            result = (None, None)
    if result[0] is None:
        candidates = [Path(target.path)] if target.path else []
        if target.export_dir:
            try:
                manifest = read_manifest(Path(target.export_dir))
                candidates += [Path(target.export_dir) / e["file"] for e in manifest["artifacts"]
                               if isinstance(e, dict) and str(e.get("file", "")).endswith(".onnx")]
            except EdgeclsError:
                pass
        for candidate in candidates:
            if not candidate.is_file():
                continue
            try:
                from edgecls.runtime.graph import count_artifact_macs

                counted = count_artifact_macs(candidate, batch=1, resolution=target.resolution)
            except EdgeclsError:  # includes MissingDependencyError: try the next candidate
                continue
            if counted.macs:
                result = (counted.macs_per_image, f"{candidate.suffix[1:]} graph {candidate.name}")
                break
    _MACS_CACHE[key] = result
    return result


def benchmark_target(
    target: Target,
    threads: int | None,
    batch: int = 1,
    timing: TimingConfig | None = None,
    timeout: float | None = None,
) -> dict:
    """One measurement in a fresh subprocess, returned as one result record."""
    from edgecls.bench.device import describe_device

    timing = timing or TimingConfig()
    if not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError(f"batch must be a positive integer, got {batch!r}")
    if target.path and not Path(target.path).is_file():
        raise EdgeclsError(f"artifact not found: {target.path}")
    spec = {"target": asdict(target), "threads": threads, "batch": batch, "timing": timing.to_dict()}
    # Generous: session creation (OpenVINO compile, torch import) can take minutes on a slow board.
    timeout = timeout or (timing.max_seconds * 2 + 600)
    # The 1-minute load average says how busy the machine was: a figure to read noisy numbers by.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    child, stderr_tail = _run_child(spec, timeout)
    if "crash" in child:
        raise BenchmarkCrash(f"benchmarking {target.label} with {target.runtime} crashed ({child['crash']})")
    if "error" in child:
        _raise_child_error(child["error"], target)
    measured = child["ok"]
    latency = summarize(measured["raw_ns"], batch)
    macs, macs_source = model_macs(target)
    device = describe_device()
    peak = device.peak(threads)
    gflops = 2 * macs * batch / (latency["p50_ms"] / 1e3) / 1e9 if macs else None
    entry = target.manifest_entry
    record = {
        "target": target.label,
        "model": target.model,
        "format": target.format,
        "runtime": target.runtime,
        "precision": target.precision,
        "file": target.path,
        "file_bytes": artifact_bytes(Path(target.path)) if target.path else None,
        "threads": threads,
        "batch": batch,
        "resolution": target.resolution,
        **{k: measured[k] for k in ("runtime_version", "input", "output_shape", "output_finite", "import_ms",
                                    "init_ms", "first_inference_ms", "warmup_runs", "warmup_ms",
                                    "timed_seconds", "stopped_by")},
        "load_average_1m": load,
        "latency": latency,
        "peak_rss_bytes": measured["peak_rss"][0],
        "peak_rss_source": measured["peak_rss"][1],
        "baseline_rss_bytes": measured["baseline_rss_bytes"],
        "macs": macs,
        "macs_source": macs_source,
        "gflops": gflops,
        "fp32_peak_gflops": peak.gflops if peak else None,
        "fp32_peak_formula": peak.formula() if peak else None,
        "peak_share": gflops / peak.gflops if (gflops and peak) else None,
        "status": entry.get("status"),
        "weights": entry.get("weights"),
        "parity": entry.get("parity"),
        "accuracy": entry.get("accuracy"),
        "raw_ns": measured["raw_ns"],
    }
    return record


def new_results(timing: TimingConfig, **extra: Any) -> dict:
    from edgecls.bench.device import describe_device

    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe_device().to_dict(),
        "timing": timing.to_dict(),
        "percentile_rule": PERCENTILE_RULE,
        "gflops_rule": ("GFLOP/s = 2 x MACs x batch / p50 latency; peak share = GFLOP/s / fp32 peak of the threads "
                        "used (int8 artifacts too: their MACs count as FLOPs against the fp32 peak)"),
        **extra,
        "results": [],
        "errors": [],
    }


def run_benchmarks(
    targets: list[Target],
    threads: list[int | None],
    batch: int = 1,
    timing: TimingConfig | None = None,
    on_result: Callable[[Target, int | None, dict | None, Exception | None], None] | None = None,
    stop_on_error: bool = False,
) -> dict:
    """Every target x thread count; failures become entries of ``errors`` unless ``stop_on_error``."""
    timing = timing or TimingConfig()
    results = new_results(timing, batch=batch)
    for target in targets:
        for n in threads:
            try:
                record = benchmark_target(target, n, batch, timing)
            except (EdgeclsError, BenchmarkCrash) as exc:
                if stop_on_error:
                    raise
                results["errors"].append({"target": target.label, "runtime": target.runtime, "threads": n,
                                          "error": str(exc).splitlines()[0]})
                if on_result:
                    on_result(target, n, None, exc)
                continue
            results["results"].append(record)
            if on_result:
                on_result(target, n, record, None)
    return results


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], sys.argv[2]))
