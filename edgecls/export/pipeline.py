"""The export run (parent side): one model, many formats and precisions, each artifact checked.

``edgecls.export.plan`` validates everything first. This process then builds the model and the
calibration/parity arrays once and saves them into a work folder inside ``--out`` (with a pid
file, so a later run can tell a killed run's folder from a live one). Each format converts in its
own interpreter (``edgecls.export.child`` through ``edgecls.isolation``): a converter that raises,
hangs or crashes is recorded and the other formats continue.

Publishing one artifact: a journal in the work folder names it, the manifest is merged (under its
lock) with the new entry, then the staged files are renamed over the old ones (same filesystem:
a reader never sees half a file). A failure before the manifest write leaves the old artifact and
its entry as they were; a kill after it is completed by the next run from the journal. So the
folder only holds artifacts its manifest vouches for, and a failing rebuild never removes a good
artifact. Ctrl-C / SIGTERM stop the converter's process group, keep what was published, remove
the work folder and propagate as KeyboardInterrupt (the CLI prints ``interrupted``, exit 130).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from edgecls.errors import EdgeclsError
from edgecls.export.plan import (DEFAULT_CALIB_SIZE, DEFAULT_TIMEOUT_SECONDS, ExportConfig, ExportPlan, artifact_name,
                                 check_output_folder, make_plan, resolve_plan)
from edgecls.formats import get_format
from edgecls.manifest import (MANIFEST_NAME, UNVERIFIED, FileRecord, ManifestEntry, atomic_write_bytes,
                              describe_os_error, locked, merge_entries, read_manifest, remove_artifact_file, sha256_of,
                              size_of)

WORKDIR_PREFIX = ".edgecls-work-"
CONTROL_PREFIX = "edgecls-export-"  # in the system temp folder: the child's protocol files, outside --out
PID_FILE = "pid"
JOURNAL = "publishing.json"
STALE_WITHOUT_PID_SECONDS = 600  # a work folder killed before its pid file was written

Log = Callable[[str], None]


@dataclass
class ExportRun:
    out: Path
    manifest_path: Path
    artifacts: list[dict]  # manifest entries of this run, in build order
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # a Core ML artifact off macOS (UNVERIFIED) is written and recorded: not a failure of the run
        return bool(self.artifacts) and all(a["status"] in ("passed", UNVERIFIED) for a in self.artifacts)


def tool_versions(fmt: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import edgecls

    versions = {"edgecls": edgecls.__version__, "python": sys.version.split()[0]}
    for dist in get_format(fmt).tools or ("torch",):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return versions


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# -- work folders ------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None off Linux.
    With the pid it names one process: a pid the kernel reused for another process has another start."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": the comm may hold spaces
    return fields[19] if len(fields) > 19 else None


def _write_owner(folder: Path) -> None:
    pid = os.getpid()
    (folder / PID_FILE).write_text(f"{pid} {_process_start(pid) or ''}".strip())


def _owner(folder: Path) -> tuple[int | None, bool]:
    """(pid, alive) of the run that owns ``folder``; pid None when its pid file is missing or unreadable."""
    try:
        parts = (folder / PID_FILE).read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None, False
    if pid == os.getpid() or not _pid_alive(pid):
        return pid, pid == os.getpid()
    start = parts[1] if len(parts) > 1 else None
    current = _process_start(pid)
    return pid, start is None or current is None or start == current


def _is_stale(folder: Path) -> tuple[bool, int | None]:
    pid, alive = _owner(folder)
    if alive:
        return False, pid
    if pid is None:  # killed before its pid file was written, or being created right now
        try:
            return time.time() - folder.stat().st_mtime >= STALE_WITHOUT_PID_SECONDS, None
        except OSError:
            return False, None
    return True, pid


def clean_stale_control_dirs(log: Log) -> None:
    """Remove the control folders (system temp) of runs that were killed (SIGKILL leaves them)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{CONTROL_PREFIX}*"):
        if not folder.is_dir():
            continue
        stale, pid = _is_stale(folder)
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            log(f"removed {folder}, left by an interrupted run" + (f" (pid {pid})" if pid else ""))


def _complete_publish(out: Path, workdir: Path) -> None:
    """Finish a publish that a kill interrupted after its manifest write (see the module docstring)."""
    journal = workdir / JOURNAL
    try:
        data = json.loads(journal.read_text())
    except (OSError, ValueError):
        return
    try:
        entry = read_manifest(out, missing_ok=True).entry_for_file(data["file"])
    except EdgeclsError:
        return
    if entry is None or entry.sha256 != data.get("sha256"):
        return  # the manifest never took the new entry: the old files and entry stand as they are
    for name in data.get("files", []):
        staged = workdir / "staging" / name
        if staged.exists():
            _replace(staged, out / name)
    journal.unlink(missing_ok=True)


def clean_stale_workdirs(out: Path, log: Log) -> None:
    """Remove work folders (and manifest temp files) that killed runs left in ``out``."""
    out = Path(out)
    with locked(out):
        for partial in out.glob(f".{MANIFEST_NAME}.*.partial"):
            partial.unlink(missing_ok=True)  # written under this lock: never a live writer's
        for folder in out.glob(f"{WORKDIR_PREFIX}*"):
            if not folder.is_dir():
                continue
            stale, pid = _is_stale(folder)
            if not stale:
                continue  # a run exporting into the same folder right now
            _complete_publish(out, folder)
            shutil.rmtree(folder, ignore_errors=True)
            log(f"removed {folder.name}, left by an interrupted run" + (f" (pid {pid})" if pid else ""))


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C: children stopped, work folder removed, manifest valid."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A KeyboardInterrupt raised while the interpreter runs an at-fork hook (logging's
    # _releaseLock, when a converter process starts) is printed as "Exception ignored" and lost: the
    # run then finished with exit 0 (seen once under load). The handler also records the signal, and
    # the format loop re-raises it at its next step.
    _STOP.clear()

    def stop(signum, frame):
        _STOP.set()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_STOP = threading.Event()


def _stop_requested() -> None:
    if _STOP.is_set():
        raise KeyboardInterrupt("signal received")


# -- the run -----------------------------------------------------------------------------------


def run_export(config: ExportConfig, log: Log | None = None) -> ExportRun:
    """Build, check and record every requested artifact; see the module docstring."""
    log = log or (lambda message: None)
    plan = make_plan(config)
    config = plan.config  # a `train` checkpoint may have set the class count and resolution
    info, formats, precisions = plan.info, plan.formats, plan.precisions
    out = Path(config.out)

    import numpy as np
    import torch

    from edgecls.export.calibration import load_image_sets
    from edgecls.models import create_model
    from edgecls.profile import profile_model

    log(f"building {info.name} ({'built-in pretrained weights' if plan.pretrained else config.weights or 'random weights: benchmark only'})")
    with torch.random.fork_rng():
        torch.manual_seed(0)  # random weights are the same draw every run: matrix results reproduce
        model = create_model(info.name, num_classes=config.num_classes, weights=config.weights,
                             pretrained=plan.pretrained, head_hidden=plan.head_hidden,
                             resolution=plan.resolution)
    for note in plan.notes:
        log(note)
    if plan.training is not None:
        from edgecls.export.calibration import checkpoint_sets

        sets = checkpoint_sets(info, plan.training, plan.resolution, config.calib_size)
        log(f"calibration and parity data: the checkpoint's own {plan.training.describe()}")
    else:
        sets = load_image_sets(info, config.calib, plan.resolution, config.calib_size)
    if "int8" in precisions:  # the calibration warnings only matter when something is calibrated
        for warning in sets.warnings:
            log(f"warning: {warning}")
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    counted = profile_model(model, resolution=plan.resolution)  # recorded: bench never rebuilds the model

    try:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale_workdirs(out, log)
    except OSError as exc:
        raise EdgeclsError(f"cannot use --out {out}: {describe_os_error(exc)}") from None
    entries: list[ManifestEntry] = []
    workdir: Path | None = None
    with _sigterm_as_interrupt():
        try:
            workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=out))
            _write_owner(workdir)
            (workdir / "staging").mkdir()
            # Through bytes: torch.save on a full disk raises a RuntimeError that names neither
            # the file nor the cause; a plain write raises OSError(ENOSPC, path).
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            (workdir / "model.pt").write_bytes(buffer.getvalue())
            np.save(workdir / "calibration.npy", sets.calibration)
            np.save(workdir / "parity.npy", sets.parity)
            np.save(workdir / "reference.npy", reference)
            if config.input_type == "uint8":  # the artifact is fed the crops' bytes; PyTorch the float preprocessing
                from edgecls.export.calibration import pixel_bytes

                np.save(workdir / "calibration_bytes.npy", pixel_bytes(sets.calibration, info.mean, info.std))
                np.save(workdir / "parity_bytes.npy", pixel_bytes(sets.parity, info.mean, info.std))
            budget_job = _save_budget(config, info, model, sets, plan.resolution, precisions, workdir, log,
                                      _model_classes(plan))
        except OSError as exc:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise EdgeclsError(f"cannot prepare the export in {out}: {describe_os_error(exc)}") from None
        except BaseException:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        # The child's protocol files and output live outside --out: on a full disk they still tell why.
        clean_stale_control_dirs(log)
        control = Path(tempfile.mkdtemp(prefix=CONTROL_PREFIX))
        _write_owner(control)
        unrecorded: list[ManifestEntry] = []
        try:
            context = _EntryContext(plan, sets, counted.params, counted.macs)
            for fmt in formats:
                _stop_requested()
                offered = plan.offered(fmt)
                if offered != precisions:
                    log(f"{fmt}: {', '.join(p for p in precisions if p not in offered)} not offered by this format, skipped")
                if not offered:
                    continue
                log(f"{fmt}: exporting {', '.join(offered)}")
                results = _run_format(plan, fmt, workdir, control, budget_job)
                for precision in offered:
                    entry = context.entry(fmt, precision, results[precision])
                    _publish(entry, results[precision], workdir, out, unrecorded)
                    log(f"{fmt} {precision}: {entry.status}" + (f" ({entry.error})" if entry.error else ""))
                    entries.append(entry)
            _stop_requested()
        except BaseException:
            _complete_publish(out, workdir)  # an interrupt between the manifest write and the renames
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.rmtree(control, ignore_errors=True)
    _keep_parity_data(out, info.name, plan.resolution, sets.parity, reference, entries, log)
    if unrecorded:
        try:
            merge_entries(out, unrecorded)
        except OSError as exc:
            log(f"warning: {len(unrecorded)} failure(s) not recorded in the manifest: {describe_os_error(exc)}")
    warnings = list(sets.warnings) if "int8" in precisions else []
    return ExportRun(out, out / MANIFEST_NAME, [e.to_dict() for e in entries], warnings)


def _keep_parity_data(out: Path, model: str, resolution: int, inputs, reference, entries: list, log: Log) -> None:
    """Keep the parity inputs and PyTorch outputs beside the manifest, so `edgecls bench --verify`
    recomputes parity where an artifact runs. Written after the artifacts (an interrupted run
    leaves none) and best-effort: a disk too full for them costs the device-side check, not the export."""
    from edgecls.parity import save_parity_data

    passed = [e for e in entries if e.passed]
    if not passed:
        return
    try:
        parity_data = save_parity_data(out, model, resolution, inputs, reference)
        for entry in passed:
            entry.parity_data = parity_data
        merge_entries(out, passed)
    except OSError as exc:
        log(f"warning: parity data for `bench --verify` not kept: {describe_os_error(exc)}")


def _model_classes(plan: ExportPlan) -> list[str] | None:
    """The class names --val folders map onto, as `edgecls evaluate` maps them: a `train`
    checkpoint's, or the names a checkpoint stores alone; None for an ImageNet head (synset ids,
    indices and ImageNet names map through the ImageNet table)."""
    if plan.classes or not plan.config.weights or plan.config.num_classes == 1000:
        return plan.classes
    from edgecls.datasets import checkpoint_classes

    names = checkpoint_classes(plan.config.weights)
    return names if names and len(names) == plan.config.num_classes else None


def _save_budget(config, info, model, sets, resolution, precisions, workdir: Path, log,
                 classes: list[str] | None = None) -> dict | None:
    """The accuracy budget of the int8 artifacts, saved for the format processes (None: plain int8)."""
    budgeted = config.min_agreement is not None or config.max_drop is not None or config.sensitivity
    if "int8" not in precisions or not budgeted:
        return None
    import numpy as np

    from edgecls.export.accuracy import prepare_budget

    budget = prepare_budget(model, info, sets, config.calib, resolution, config.min_agreement, config.max_drop,
                            config.val, classes)
    log(f"int8 budget: {budget.kind} >= {budget.goal:.1%} on {len(budget.images)} tuning images"
        + (f" (fp32: {budget.fp32_metric:.1%})" if budget.kind == "accuracy" else ""))
    np.save(workdir / "budget_images.npy", budget.images)
    np.save(workdir / "budget_labels.npy", budget.labels)
    return {"kind": budget.kind, "goal": budget.goal, "fp32_metric": budget.fp32_metric,
            "sensitivity": config.sensitivity}


def _run_format(plan: ExportPlan, fmt: str, workdir: Path, control: Path, budget_job: dict | None = None) -> dict[str, dict]:
    """One format's conversions in a fresh interpreter; a result for every precision, crash or not."""
    from edgecls.export.child import RUNNING
    from edgecls.isolation import run_isolated

    config, precisions = plan.config, plan.offered(fmt)
    progress = control / f"progress_{fmt}.json"
    job = {
        "format": fmt, "module": get_format(fmt).converter, "side_suffixes": list(get_format(fmt).side_suffixes),
        "model": plan.info.name,
        "num_classes": config.num_classes, "head_hidden": plan.head_hidden,
        "state_dict": str(workdir / "model.pt"), "resolution": plan.resolution,
        "batch": config.batch, "dynamic_batch": config.dynamic_batch, "nhwc": config.nhwc, "opset": config.opset,
        "input_type": config.input_type, "runs_here": get_format(fmt).runs_here(),
        "classes": _model_classes(plan),  # embedded in every artifact as its labels
        "options": plan.profile.options, "precisions": precisions,
        "names": {p: plan.file_name(fmt, p) for p in precisions},
        "workdir": str(workdir), "staging": str(workdir / "staging"), "progress": str(progress),
        "budget": budget_job, "out": str(plan.config.out),
    }
    started = time.monotonic()
    outcome = run_isolated("edgecls.export.child:export_format", job, timeout=config.timeout, workdir=control,
                           output=control / f"log_{fmt}.txt")
    if outcome.ok:
        results = dict(outcome.value)
    else:
        try:
            results = json.loads(progress.read_text())
        except (OSError, ValueError):
            results = {}
    failure = None if outcome.ok else (
        f"converter process {outcome.crash}" if outcome.crash else f"converter failed: {outcome.describe()}")
    for precision in precisions:
        if precision in results and results[precision].get("status") != RUNNING:
            continue
        if precision in results:
            tail = " | ".join([ln.strip()[:200] for ln in outcome.output_tail.splitlines() if ln.strip()][-3:])
            error = f"{failure or 'converter stopped without a result'} while exporting {precision}"
            results[precision] = {"status": "error", "error": error + (f": {tail}" if tail else ""),
                                  "seconds": round(time.monotonic() - started, 2)}
        else:
            results[precision] = {"status": "error", "seconds": 0.0,
                                  "error": f"not attempted: {failure or 'converter stopped'} before {precision}"}
    return results


@dataclass
class _EntryContext:
    plan: ExportPlan
    sets: object
    params: int
    macs: int

    def entry(self, fmt: str, precision: str, result: dict) -> ManifestEntry:
        from edgecls.parity import ParityFigures, rule_for

        config, info, profile = self.plan.config, self.plan.info, self.plan.profile
        real_weights = bool(self.plan.pretrained or config.weights)
        rule = rule_for(precision, real_weights, config.min_agreement)
        weights = "pretrained" if self.plan.pretrained else (f"file:{Path(config.weights).name}" if config.weights else "random")
        entry = ManifestEntry(
            format=fmt, precision=precision, status="failed", file=self.plan.file_name(fmt, precision),
            model=info.name, weights=weights, num_classes=config.num_classes, classes=self.plan.classes,
            batch=None if config.dynamic_batch else config.batch, dynamic_batch=config.dynamic_batch,
            params=self.params, macs=self.macs,
            input=result.get("input"),
            preprocessing={"resolution": self.plan.resolution, "mean": list(info.mean), "std": list(info.std),
                           "crop_pct": info.crop_pct, "interpolation": info.interpolation,
                           "resize": "shorter side to resolution / crop_pct, centre crop",
                           "scale": "1/255, then (x - mean) / std", "layout": "NHWC" if config.nhwc else "NCHW",
                           "input_type": config.input_type,
                           "in_graph": ("scale and normalisation (feed RGB bytes 0-255)" if config.input_type == "uint8"
                                        else "nothing")},
            parity_rule=rule.as_dict(), parity_inputs=self.sets.describe_parity(),
            calibration=self.sets.describe() if precision == "int8" else None,
            # random weights: latency and size are real, the decisions are noise (parity is a cosine check)
            benchmark_only=weights == "random",
            # layers kept float, the tuning metric and the latency cost (edgecls.export.accuracy)
            accuracy_budget=result.get("accuracy_budget") if precision == "int8" else None,
            runtime=result.get("runtime"), execution_precision=result.get("execution_precision"),
            tools=tool_versions(fmt), target=profile.name,
            settings=profile.options.get(fmt, {}).get(precision),
            seconds={"export": result.get("export_seconds"), "parity": result.get("parity_seconds"),
                     "total": result.get("seconds")},
            created=_now(),
        )
        if result.get("status") == "unverified":
            entry.status, entry.unverified_reason = UNVERIFIED, result.get("reason")
            return entry
        if result.get("status") != "converted":
            entry.error = result.get("error") or "conversion failed"
            return entry
        figures = ParityFigures(**result["parity"])
        entry.parity = figures.as_dict()
        reason = rule.check(figures)
        if reason:
            entry.error = f"parity failed: {reason}"
        else:
            entry.status = "passed"
        return entry


def _fail(entry: ManifestEntry, error: str) -> None:
    entry.status, entry.error = "failed", error
    entry.intended_file, entry.file = entry.file, None
    entry.sha256, entry.size_bytes, entry.side_files = None, None, []


def _publish(entry: ManifestEntry, result: dict, workdir: Path, out: Path, unrecorded: list[ManifestEntry]) -> None:
    """Record ``entry`` and, when it passed, move its files into ``out`` (see the module docstring).
    A failure the manifest could not take (a full disk) goes to ``unrecorded``, retried once the
    work folder's space is free again."""
    staging = workdir / "staging"
    name = entry.file
    fmt = get_format(entry.format)
    files = [name, *(result.get("side_files") or [p.name for p in fmt.side_files(Path(name))])]
    if entry.status in ("passed", UNVERIFIED):
        missing = [n for n in files if not (staging / n).exists()]
        if missing:
            _fail(entry, f"converter reported success but wrote no {missing[0]}")
    if entry.status not in ("passed", UNVERIFIED):
        if entry.file:
            _fail(entry, entry.error or "failed")
        for n in files:
            remove_artifact_file(staging / n)
        try:
            merge_entries(out, [entry])
        except OSError:
            unrecorded.append(entry)
        return
    records = [FileRecord(n, sha256_of(staging / n), size_of(staging / n)) for n in files]
    # The artifact's size is that of the model's files (NCNN's .param + .bin), the format table's say.
    model_files = {p.name for p in fmt.model_files(Path(name))}
    entry.sha256, entry.side_files = records[0].sha256, records[1:]
    entry.size_bytes = sum(r.size_bytes for r in records if r.file in model_files)
    journal = workdir / JOURNAL
    try:
        atomic_write_bytes(journal, json.dumps({"file": name, "sha256": entry.sha256, "files": files}).encode())
        merge_entries(out, [entry])
    except OSError as exc:
        # Nothing in --out changed: the older artifact (if any) and its entry are intact.
        journal.unlink(missing_ok=True)
        reason = describe_os_error(exc)
        _fail(entry, f"cannot record {name}: {reason}")
        for n in files:
            remove_artifact_file(staging / n)
        unrecorded.append(entry)
        return
    for n in files:
        _replace(staging / n, out / n)
    journal.unlink(missing_ok=True)


def _replace(staged: Path, dest: Path) -> None:
    """Rename ``staged`` over ``dest``; a folder artifact (.mlpackage) first removes the old folder,
    since a rename cannot replace a non-empty directory."""
    if staged.is_dir() and dest.exists():
        remove_artifact_file(dest)
    os.replace(staged, dest)


__all__ = ["DEFAULT_CALIB_SIZE", "DEFAULT_TIMEOUT_SECONDS", "MANIFEST_NAME", "WORKDIR_PREFIX", "ExportConfig",
           "ExportRun", "artifact_name", "check_output_folder", "clean_stale_control_dirs", "clean_stale_workdirs", "resolve_plan", "run_export",
           "sha256_of", "tool_versions"]
