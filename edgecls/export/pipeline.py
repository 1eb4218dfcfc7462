"""The export pipeline: one model, many formats and precisions, each artifact checked for parity.

The parent process validates every input, builds the model and the calibration/parity arrays once
and saves them into a workdir inside ``--out``. Each format then runs in its own Python process
(``python -m edgecls.export.pipeline JOB``): a converter that raises, hangs or crashes the
interpreter (segfaults in native converters happen) is recorded and the other formats continue.
The child writes each artifact under a staging folder and reports its parity figures; the parent
judges them, moves passing files into ``--out`` (a rename on the same filesystem, so a reader
never sees half a file) and merges manifest.json.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from edgecls.errors import EdgeclsError, InvalidArgumentError

MANIFEST_NAME = "manifest.json"
# A format that cannot run on this OS (Core ML off macOS): the artifact is written and recorded with
# this status, never counted as passed by bench or reports.
UNVERIFIED_STATUS = "converted, not verified: needs macOS"
PUBLISHED_STATUSES = ("passed", UNVERIFIED_STATUS)
WORKDIR_PREFIX = ".edgecls-work-"
DEFAULT_CALIB_SIZE = 100
DEFAULT_TIMEOUT_SECONDS = 1800.0  # per format; a hung converter must not hang the run
# Distributions whose versions matter for each format's artifacts (read from package metadata).
FORMAT_TOOLS = {
    "onnx": ("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime"),
    "openvino": ("torch", "openvino", "nncf"),
    "tflite": ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer"),
    "executorch": ("torch", "executorch", "torchao"),
    "ncnn": ("torch", "pnnx", "ncnn"),
    "coreml": ("torch", "coremltools"),
}

Log = Callable[[str], None]


@dataclass
class ExportConfig:
    """One ``edgecls export`` run (the CLI options, with the same defaults)."""

    model: str
    weights: str | Path | None = None
    pretrained: bool = False
    formats: Sequence[str] | None = None  # None: the target's formats (explicit --target) or all
    precisions: Sequence[str] | None = None  # None: fp32, or the target's precisions when --target is given
    extra_precisions: Sequence[str] = ()  # added to the above (--int8, --fp16)
    calib: str | Path = "builtin"
    calib_size: int = DEFAULT_CALIB_SIZE
    resolution: int | None = None
    batch: int = 1
    dynamic_batch: bool = False
    nhwc: bool = False
    input_type: str = "float32"  # "uint8": the artifact takes RGB bytes, normalisation folded in
    opset: int = 18
    target: str | None = None
    out: Path = Path("out")
    min_agreement: float | None = None
    num_classes: int = 1000
    timeout: float = DEFAULT_TIMEOUT_SECONDS


@dataclass
class ExportRun:
    out: Path
    manifest_path: Path
    artifacts: list[dict]  # manifest entries of this run, in build order
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.artifacts) and all(a["status"] in PUBLISHED_STATUSES for a in self.artifacts)


# -- validation --------------------------------------------------------------------------------


def _split(values: Sequence[str] | str | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    items = [v.strip().lower() for value in values for v in str(value).split(",") if v.strip()]
    return list(dict.fromkeys(items)) or None


def resolve_plan(config: ExportConfig, profile) -> tuple[list[str], list[str]]:
    """The formats and precisions to build, validated."""
    from edgecls.export.base import PRECISIONS
    from edgecls.export.registry import FORMAT_MODULES, check_format

    formats = _split(config.formats)
    if formats is None:
        formats = list(profile.formats) if config.target else list(FORMAT_MODULES)
    formats = [check_format(f) for f in formats]
    precisions = _split(config.precisions)
    if precisions is None:
        precisions = list(profile.precisions) if config.target else ["fp32"]
    precisions += _split(list(config.extra_precisions)) or []
    for precision in precisions:
        if precision not in PRECISIONS:
            raise InvalidArgumentError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")
    ordered = [p for p in PRECISIONS if p in precisions]
    return [f for f in FORMAT_MODULES if f in formats], ordered


def _check_numbers(config: ExportConfig) -> None:
    def positive_int(value: Any, option: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{option} must be a positive integer, got {value!r}")

    positive_int(config.batch, "--batch")
    positive_int(config.calib_size, "--calib-size")
    positive_int(config.opset, "--opset")
    from edgecls.export.app_input import INPUT_TYPES

    if config.input_type not in INPUT_TYPES:
        raise InvalidArgumentError(f"unknown --input-type '{config.input_type}': use one of {', '.join(INPUT_TYPES)}")
    if config.dynamic_batch and config.batch != 1:
        raise InvalidArgumentError("give either --batch B or --dynamic-batch, not both")
    if config.min_agreement is not None and not 0.0 <= config.min_agreement <= 1.0:
        raise InvalidArgumentError(f"--min-agreement must be between 0 and 1 (e.g. 0.95), got {config.min_agreement}")
    if config.weights is not None and config.pretrained:
        raise InvalidArgumentError("give either --weights FILE or --pretrained, not both")
    if config.weights is not None and not Path(config.weights).is_file():
        raise EdgeclsError(f"weights file not found: {config.weights}")


def check_output_folder(out: Path) -> None:
    """Fail early, before any work, when ``out`` cannot be created or written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgeclsError(f"--out {out} is a file, not a folder: choose a folder for the artifacts")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise EdgeclsError(f"cannot write to --out {out} ({existing} is not writable): choose another folder")


def artifact_name(info, config: ExportConfig, resolution: int, precision: str, suffix: str) -> str:
    parts = [info.name]
    if resolution != info.resolution:
        parts.append(f"r{resolution}")
    if config.dynamic_batch:
        parts.append("dynbatch")
    elif config.batch != 1:
        parts.append(f"b{config.batch}")
    if config.nhwc:
        parts.append("nhwc")
    if config.input_type == "uint8":
        parts.append("u8")
    parts.append(precision)
    return "_".join(parts) + suffix


def _suffix(fmt: str) -> str:
    return {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite", "executorch": ".pte", "ncnn": ".ncnn.param", "coreml": ".mlpackage"}.get(fmt, f".{fmt}")


# -- helpers -----------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    """A file's sha256; for a folder artifact (Core ML's .mlpackage) the sha256 over every file in it,
    sorted by relative path, each as its path, a NUL byte and its contents' sha256."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for member in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(member.relative_to(path).as_posix().encode() + b"\0" + sha256_of(member).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def tool_versions(fmt: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import edgecls

    versions = {"edgecls": edgecls.__version__, "python": sys.version.split()[0]}
    for dist in FORMAT_TOOLS.get(fmt, ("torch",)):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return versions


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    partial.replace(path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"converter process killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"converter process killed by signal {-code}"
    return f"converter process exited with code {code}"


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(ln.strip()[:200] for ln in text[-lines:])


# -- the run -----------------------------------------------------------------------------------


def run_export(config: ExportConfig, log: Log | None = None) -> ExportRun:
    """Build, check and record every requested artifact; see the module docstring."""
    from edgecls.export.profiles import load_profile
    from edgecls.models import get_model_info

    log = log or (lambda message: None)
    out = Path(config.out)
    # Everything a user can get wrong is checked before anything is written or computed.
    info = get_model_info(config.model)
    _check_numbers(config)
    profile = load_profile(config.target)
    formats, precisions = resolve_plan(config, profile)
    resolution = info.check_resolution(config.resolution or info.resolution)
    if config.opset < 17:
        raise InvalidArgumentError(f"--opset {config.opset} is too old: use 17 or newer")
    check_output_folder(out)

    import numpy as np
    import torch

    from edgecls.export.calibration import load_image_sets
    from edgecls.models import create_model

    log(f"building {info.name} ({'pretrained' if config.pretrained else config.weights or 'random weights'})")
    with torch.random.fork_rng():
        torch.manual_seed(0)  # random weights are the same draw every run: matrix results reproduce
        model = create_model(info.name, num_classes=config.num_classes, weights=config.weights,
                             pretrained=config.pretrained)
    sets = load_image_sets(info, config.calib, resolution, config.calib_size)
    if "int8" in precisions:  # the calibration warnings only matter when something is calibrated
        for warning in sets.warnings:
            log(f"warning: {warning}")
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    real_weights = bool(config.pretrained or config.weights)
    weights_label = "pretrained" if config.pretrained else (f"file:{Path(config.weights).name}" if config.weights else "random")

    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=out))
    staging = workdir / "staging"
    staging.mkdir()
    entries: list[dict] = []
    try:
        torch.save(model.state_dict(), workdir / "model.pt")
        np.save(workdir / "calibration.npy", sets.calibration)
        np.save(workdir / "parity.npy", sets.parity)
        np.save(workdir / "reference.npy", reference)
        if config.input_type == "uint8":  # the artifact is fed the crops' bytes; PyTorch the float preprocessing
            from edgecls.export.calibration import pixel_bytes

            np.save(workdir / "calibration_bytes.npy", pixel_bytes(sets.calibration, info.mean, info.std))
            np.save(workdir / "parity_bytes.npy", pixel_bytes(sets.parity, info.mean, info.std))
        from edgecls.export.parity import rule_for
        from edgecls.export.registry import FORMAT_MODULES

        for fmt in formats:
            offered = _offered_precisions(fmt, precisions)
            if offered != precisions:
                log(f"{fmt}: {', '.join(p for p in precisions if p not in offered)} not offered by this format, skipped")
            if not offered:
                continue
            names = {p: artifact_name(info, config, resolution, p, _suffix(fmt)) for p in offered}
            job = {
                "format": fmt, "module": FORMAT_MODULES[fmt], "model": info.name, "num_classes": config.num_classes,
                "state_dict": str(workdir / "model.pt"), "resolution": resolution, "batch": config.batch,
                "dynamic_batch": config.dynamic_batch, "nhwc": config.nhwc, "opset": config.opset,
                "input_type": config.input_type,
                "options": profile.options, "precisions": offered, "names": names,
                "workdir": str(workdir), "staging": str(staging), "result": str(workdir / f"result_{fmt}.json"),
            }
            log(f"{fmt}: exporting {', '.join(offered)}")
            results = _run_job(job, workdir, config.timeout)
            for precision in offered:
                result = results[precision]
                rule = rule_for(precision, real_weights, config.min_agreement)
                entry = _manifest_entry(fmt, precision, names[precision], result, rule, info, resolution, config,
                                        weights_label, sets, profile)
                _publish(entry, result, staging, out)
                log(f"{fmt} {precision}: {entry['status']}" + (f" ({entry['error']})" if entry["error"] else ""))
                entries.append(entry)
        manifest_path = _merge_manifest(out, entries)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return ExportRun(out, manifest_path, entries, list(sets.warnings) if "int8" in precisions else [])


def _offered_precisions(fmt: str, precisions: list[str]) -> list[str]:
    """The requested precisions that ``fmt``'s exporter offers (ExecuTorch has no fp16, NCNN no int8):
    asking for --fp16 across all formats must not fail the formats that have none."""
    from edgecls.export.registry import exporter_class

    try:
        offered = exporter_class(fmt).precisions
    except Exception:  # noqa: BLE001 - a module that cannot even load fails in its own process, per precision
        return list(precisions)
    return [p for p in precisions if p in offered]


def _run_job(job: dict, workdir: Path, timeout: float) -> dict[str, dict]:
    """Run one format's job in a fresh interpreter; a result for every precision, crash or not."""
    job_path = workdir / f"job_{job['format']}.json"
    log_path = workdir / f"log_{job['format']}.txt"
    _write_json(job_path, job)
    env = dict(os.environ)
    # The child sees the same import path as this process (tests register exporters from their own modules).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a segfault leaves a Python traceback in the log
    started = time.monotonic()
    failure = None
    with open(log_path, "wb") as log_file:
        try:
            proc = subprocess.run([sys.executable, "-m", "edgecls.export.pipeline", str(job_path)],
                                  stdout=log_file, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            if proc.returncode != 0:
                failure = _describe_exit(proc.returncode)
        except subprocess.TimeoutExpired:
            failure = f"converter timed out after {timeout:.0f} s"
    results = {}
    result_path = Path(job["result"])
    if result_path.is_file():
        results = json.loads(result_path.read_text()).get("artifacts", {})
    for precision in job["precisions"]:
        if precision in results and results[precision].get("status") != "running":
            continue
        running = results.get(precision)
        if running is not None:
            reason = failure or "converter stopped without a result"
            tail = _log_tail(log_path)
            error = f"{reason} while exporting {precision}" + (f": {tail}" if tail else "")
        else:
            error = f"not attempted: {failure or 'converter stopped'} before {precision}"
        results[precision] = {"status": "error", "error": error,
                              "seconds": round(time.monotonic() - started, 2) if running else 0.0}
    return results


def _manifest_entry(fmt, precision, name, result, rule, info, resolution, config, weights_label, sets, profile) -> dict:
    from edgecls.export.parity import ParityFigures

    entry: dict[str, Any] = {
        "format": fmt, "precision": precision, "file": name, "status": "failed", "error": None,
        "model": info.name, "weights": weights_label, "num_classes": config.num_classes,
        "input": result.get("input"),
        "preprocessing": {"resolution": resolution, "mean": list(info.mean), "std": list(info.std),
                          "crop_pct": info.crop_pct, "interpolation": info.interpolation,
                          "resize": "shorter side to resolution / crop_pct, centre crop", "scale": "1/255, then (x - mean) / std",
                          "layout": "NHWC" if config.nhwc else "NCHW", "input_type": config.input_type,
                          "in_graph": "scale and normalisation (feed RGB bytes 0-255)" if config.input_type == "uint8" else "nothing"},
        "parity": None, "parity_rule": rule.as_dict(),
        "calibration": sets.describe() if precision == "int8" else None,
        "runtime": result.get("runtime"), "tools": tool_versions(fmt),
        "target": profile.name, "settings": profile.options.get(fmt, {}).get(precision),
        "seconds": {"export": result.get("export_seconds"), "parity": result.get("parity_seconds"),
                    "total": result.get("seconds")},
        "created": _now(),
    }
    if result.get("status") == "unverified":
        entry["status"] = UNVERIFIED_STATUS
        entry["unverified_reason"] = result.get("reason")
        return entry
    if result.get("status") != "converted":
        entry["error"] = result.get("error") or "conversion failed"
        return entry
    figures = ParityFigures(**result["parity"])
    entry["parity"] = figures.as_dict()
    reason = rule.check(figures)
    if reason:
        entry["error"] = f"parity failed: {reason}"
    else:
        entry["status"] = "passed"
    return entry


def _publish(entry: dict, result: dict, staging: Path, out: Path) -> None:
    """Move a passing artifact into ``out``; for a failing one, remove any older file of that name
    so the folder never holds an artifact its manifest does not vouch for."""
    files = [entry["file"], *(result.get("side_files") or _side_names(entry["format"], entry["file"]))]
    if entry["status"] not in PUBLISHED_STATUSES:
        for name in files:
            _remove(out / name)
        entry["file"] = None
        entry["intended_file"] = files[0]
        return
    for name in files:
        if not (staging / name).exists():
            entry.update(status="failed", error=f"converter reported success but wrote no {name}")
            return _publish(entry, {"side_files": result.get("side_files", [])}, staging, out)
    details = []
    for name in files:
        if (out / name).is_dir():  # a folder artifact: rename cannot replace a non-empty folder
            _remove(out / name)
        os.replace(staging / name, out / name)
        details.append({"file": name, "sha256": sha256_of(out / name), "size_bytes": size_of(out / name)})
    entry["sha256"] = details[0]["sha256"]
    entry["size_bytes"] = details[0]["size_bytes"]
    entry["side_files"] = details[1:]


def _side_names(fmt: str, name: str) -> list[str]:
    """Side file names an artifact of ``fmt`` called ``name`` would have (OpenVINO's .bin)."""
    try:
        from edgecls.export.registry import exporter_class

        return [p.name for p in exporter_class(fmt)().side_files(Path(name))]
    except Exception:  # noqa: BLE001 - a format that cannot even load has written no side files
        return []


def _merge_manifest(out: Path, entries: list[dict]) -> Path:
    """Replace this run's entries in ``out``'s manifest, keep the rest (other models, other formats)."""
    import edgecls

    path = out / MANIFEST_NAME
    previous: list[dict] = []
    if path.is_file():
        try:
            previous = json.loads(path.read_text()).get("artifacts", [])
        except (json.JSONDecodeError, AttributeError):
            previous = []  # a damaged manifest is rebuilt from this run rather than blocking it
    rebuilt = {(e["file"] or e.get("intended_file")) for e in entries}
    kept = [e for e in previous if (e.get("file") or e.get("intended_file")) not in rebuilt]
    manifest = {"edgecls_version": edgecls.__version__, "updated": _now(), "artifacts": kept + entries}
    _write_json(path, manifest)
    return path


# -- the child process -------------------------------------------------------------------------


def _child(job_path: Path) -> int:
    """Export every precision of one format and measure parity; results go to the job's result file."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    job = json.loads(Path(job_path).read_text())
    result_path = Path(job["result"])
    results: dict[str, Any] = {"format": job["format"], "artifacts": {}}
    _write_json(result_path, results)

    import numpy as np

    from edgecls.export.base import ExportRequest
    from edgecls.export.parity import compare
    from edgecls.runtime.run import run_artifact
    from edgecls.export.registry import exporter_class
    from edgecls.models import create_model

    workdir = Path(job["workdir"])
    staging = Path(job["staging"])
    try:
        model = create_model(job["model"], num_classes=job["num_classes"], weights=job["state_dict"])
        exporter = exporter_class(job["format"], job["module"])()
    except Exception as exc:  # noqa: BLE001 - recorded for every precision of this format
        for precision in job["precisions"]:
            results["artifacts"][precision] = {"status": "error", "error": _first_line(exc), "seconds": 0.0}
        _write_json(result_path, results)
        traceback.print_exc()
        return 0
    info = model.edgecls_info
    input_type = job.get("input_type", "float32")
    suffix = "_bytes" if input_type == "uint8" else ""
    if input_type == "uint8":
        from edgecls.export.app_input import wrap

        model = wrap(model, info.mean, info.std)
    parity_inputs = np.load(workdir / f"parity{suffix}.npy")
    reference = np.load(workdir / "reference.npy")
    request = ExportRequest(model=model, info=info, resolution=job["resolution"], batch=job["batch"],
                            dynamic_batch=job["dynamic_batch"], nhwc=job["nhwc"], opset=job["opset"],
                            calibration=np.load(workdir / f"calibration{suffix}.npy"), workdir=workdir,
                            options=job["options"], input_type=input_type)
    for precision in job["precisions"]:
        dest = staging / job["names"][precision]
        entry: dict[str, Any] = {"status": "running"}
        results["artifacts"][precision] = entry
        _write_json(result_path, results)  # a crash from here on is pinned to this precision
        started = time.monotonic()
        try:
            if precision not in exporter.precisions:
                raise InvalidArgumentError(f"{job['format']} has no {precision} precision")
            exporter.export(request, precision, dest)
            entry["export_seconds"] = round(time.monotonic() - started, 2)
            entry["side_files"] = [p.name for p in exporter.side_files(dest)]
            if not getattr(exporter, "can_verify", lambda: True)():
                entry.update(status="unverified", reason=f"{job['format']} runs only on macOS; parity runs there")
                entry["seconds"] = round(time.monotonic() - started, 2)
                _write_json(result_path, results)
                continue
            parity_started = time.monotonic()
            outputs, described = run_artifact(dest, parity_inputs, batch=None if job["dynamic_batch"] else job["batch"])
            entry["parity"] = compare(reference, outputs).as_dict()
            entry["parity_seconds"] = round(time.monotonic() - parity_started, 2)
            entry.update(status="converted", input=described["input"],
                         runtime=f"{described['runtime']} {described['runtime_version']}".strip())
        except Exception as exc:  # noqa: BLE001 - one artifact's failure is data, not the end of the run
            traceback.print_exc()
            entry.update(status="error", error=_first_line(exc))
        entry["seconds"] = round(time.monotonic() - started, 2)
        _write_json(result_path, results)
    return 0


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1])))
