"""The child side of an export run: one format, every precision, in its own interpreter.

Called through ``edgecls.isolation.run_isolated("edgecls.export.child:export_format", job)``.
Each artifact is written under the job's staging folder and run in its runtime against the
PyTorch reference; the parent judges the figures and publishes. Progress (which precision is
running) goes to the job's progress file first, so a crash of the interpreter is pinned to the
precision that was being built.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from edgecls.errors import InvalidArgumentError
from edgecls.isolation import one_line
from edgecls.manifest import remove_artifact_file

RUNNING = "running"


def _write_progress(path: Path, results: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(json.dumps(results))
        os.replace(tmp, path)
    except OSError:  # a full disk: the parent still learns the outcome from the result protocol
        tmp.unlink(missing_ok=True)


def export_format(job: dict) -> dict:
    """Export every precision of ``job['format']`` and measure parity; per precision a result."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    progress = Path(job["progress"])
    results: dict[str, Any] = {}
    _write_progress(progress, results)

    import numpy as np

    from edgecls.export.base import ExportRequest
    from edgecls.parity import compare
    from edgecls.export.registry import exporter_class
    from edgecls.models import create_model
    from edgecls.runtime.base import cpu_bf16_flags, execution_problem
    from edgecls.runtime.run import run_artifact

    workdir = Path(job["workdir"])
    staging = Path(job["staging"])

    def sides(dest: Path) -> list[Path]:  # from the parent's format table, which tests may extend
        return [dest.with_suffix(s) for s in job["side_suffixes"]]

    try:
        model = create_model(job["model"], num_classes=job["num_classes"], weights=job["state_dict"],
                             head_hidden=job.get("head_hidden"), resolution=job["resolution"])
        exporter = exporter_class(job["format"], job["module"])()
    except Exception as exc:  # noqa: BLE001 - recorded for every precision of this format
        traceback.print_exc()
        return {p: {"status": "error", "error": one_line(exc), "seconds": 0.0} for p in job["precisions"]}
    info = model.edgecls_info
    input_type = job.get("input_type", "float32")
    # "uint8": the exporters see the model behind the byte-input wrapper and calibrate / check parity
    # on the crops' bytes; the reference stays PyTorch on the float preprocessing.
    arrays = "_bytes" if input_type == "uint8" else ""
    if input_type == "uint8":
        from edgecls.export.app_input import wrap

        model = wrap(model, info.mean, info.std)
    parity_inputs = np.load(workdir / f"parity{arrays}.npy")
    reference = np.load(workdir / "reference.npy")
    request = ExportRequest(model=model, info=info, resolution=job["resolution"], batch=job["batch"],
                            dynamic_batch=job["dynamic_batch"], nhwc=job["nhwc"], opset=job["opset"],
                            calibration=np.load(workdir / f"calibration{arrays}.npy"), workdir=workdir,
                            options=job["options"], input_type=input_type, classes=job.get("classes"))
    for precision in job["precisions"]:
        dest = staging / job["names"][precision]
        entry: dict[str, Any] = {"status": RUNNING}
        results[precision] = entry
        _write_progress(progress, results)  # a crash from here on is pinned to this precision
        started = time.monotonic()
        try:
            if precision not in exporter.precisions:
                raise InvalidArgumentError(f"{job['format']} has no {precision} precision")
            if precision == "int8" and job.get("budget"):
                entry["accuracy_budget"] = _budgeted_int8(exporter, request, dest, job)
            else:
                exporter.export(request, precision, dest)
            entry["export_seconds"] = round(time.monotonic() - started, 2)
            entry["side_files"] = [p.name for p in sides(dest)]
            if not job.get("runs_here", True):  # the format's runtime needs another OS (Core ML: macOS)
                entry.update(status="unverified", reason=f"{job['format']} runs only on macOS; parity runs there")
                entry["seconds"] = round(time.monotonic() - started, 2)
                _write_progress(progress, results)
                continue
            parity_started = time.monotonic()
            outputs, described = run_artifact(dest, parity_inputs, batch=None if job["dynamic_batch"] else job["batch"])
            entry["parity"] = compare(reference, outputs).as_dict()
            entry["parity_seconds"] = round(time.monotonic() - parity_started, 2)
            entry.update(status="converted", input=described["input"],
                         execution_precision=described.get("execution_precision"),
                         runtime=f"{described['runtime']} {described['runtime_version']}".strip())
            # bf16 is asked of the runtime, not stored: figures from an f32 fallback would be a fake pass.
            problem = execution_problem(precision, described.get("execution_precision"), cpu_bf16_flags())
            if problem:
                entry.update(status="unverified", reason=problem)
        except Exception as exc:  # noqa: BLE001 - one artifact's failure is data, not the end of the run
            traceback.print_exc()
            entry.update(status="error", error=one_line(exc))
            for path in (dest, *sides(dest)):  # a half-written file must not linger
                remove_artifact_file(Path(path))
        entry["seconds"] = round(time.monotonic() - started, 2)
        _write_progress(progress, results)
    return results


__all__ = ["RUNNING", "export_format"]


def _budgeted_int8(exporter, request, dest: Path, job: dict) -> dict:
    import numpy as np

    from edgecls.export.accuracy import Budget, export_within_budget

    spec, workdir = job["budget"], Path(job["workdir"])
    stem = Path(job["out"]) / f"{Path(dest.name).stem}.sensitivity" if spec.get("sensitivity") else None
    images = np.load(workdir / "budget_images.npy")
    if request.input_type == "uint8":  # the artifact being tuned takes the crops' bytes
        from edgecls.export.calibration import pixel_bytes

        images = pixel_bytes(images, request.info.mean, request.info.std)
    budget = Budget(spec["kind"], spec["goal"], images,
                    np.load(workdir / "budget_labels.npy"), spec["fp32_metric"], stem)
    return export_within_budget(exporter, request, dest, budget, log=lambda message: print(message, flush=True))
