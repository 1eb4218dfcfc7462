"""One converter test case: a seeded random-weight model, built-in photos, its PyTorch logits and a
request; and the steps every converter test takes with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def export_case(model_name: str, resolution: int, calib_size: int, workdir: Path):
    """(request, image sets, PyTorch reference logits on the parity views, workdir)."""
    import torch

    import edgecls
    from edgecls.export.base import ExportRequest
    from edgecls.export.calibration import builtin_sets

    torch.manual_seed(0)
    model = edgecls.create_model(model_name).eval()
    sets = builtin_sets(model.edgecls_info, resolution, calib_size)
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    request = ExportRequest(model=model, info=model.edgecls_info, resolution=resolution, batch=1,
                            dynamic_batch=False, nhwc=False, opset=18, calibration=sets.calibration,
                            workdir=workdir)
    return request, sets, reference, workdir


def case_fixture(model_name: str, resolution: int, calib_size: int):
    """A module-scoped pytest fixture holding export_case(...) in its own temporary folder."""
    import pytest

    @pytest.fixture(scope="module")
    def case(tmp_path_factory):
        return export_case(model_name, resolution, calib_size, tmp_path_factory.mktemp(model_name))

    return case


def check_converted(case, format_name: str, precision: str, name: str, min_cosine: float, max_size_ratio: float,
                    model_file=lambda path: path):
    """Export the case's model at ``precision`` to ``workdir/name.format(precision)``, run it on the
    parity views in its own runtime and hold it to the parity rules: fp32 within FP32_MAX_REL_DIFF of
    PyTorch, a smaller precision at least ``min_cosine`` with its weights (``model_file(artifact)``)
    under ``max_size_ratio`` of the fp32 artifact's. Returns (exporter, artifact path)."""
    from edgecls.export.registry import exporter_class
    from edgecls.parity import FP32_MAX_REL_DIFF, compare
    from edgecls.runtime.run import run_artifact

    request, sets, reference, workdir = case
    exporter = exporter_class(format_name)()
    dest = workdir / name.format(precision)
    exporter.export(request, precision, dest)
    outputs, described = run_artifact(dest, sets.parity)
    figures = compare(reference, outputs)
    assert described["runtime"] == format_name
    assert described["input"]["shape"] == [1, 3, request.resolution, request.resolution]
    if precision == "fp32":
        assert figures.max_rel_diff <= FP32_MAX_REL_DIFF
    else:
        assert figures.min_cosine >= min_cosine
        fp32 = workdir / name.format("fp32")
        if not fp32.exists():  # the fp32 case may have run in another worker or not at all
            exporter.export(request, "fp32", fp32)
        assert model_file(dest).stat().st_size < max_size_ratio * model_file(fp32).stat().st_size
    return exporter, dest


def missing_dependency_messages(cwd: Path, hidden: list[str], calls: list[str]) -> list[str]:
    """The MissingDependencyError line of each call (Python source) in a fresh interpreter where
    the ``hidden`` modules cannot be imported."""
    code = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden) + (
        "from edgecls.errors import MissingDependencyError\n"
        "from edgecls.export.registry import exporter_class\n"
        "from edgecls.runtime.registry import runner_class\n"
        f"for call in ({''.join(f'lambda: {call}, ' for call in calls)}):\n"
        "    try:\n"
        "        call()\n"
        "    except MissingDependencyError as exc:\n"
        "        print(exc)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=cwd, env={"PYTHONPATH": ":".join(sys.path)}).stdout.splitlines()
