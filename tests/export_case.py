"""One converter test case: a seeded random-weight model, built-in photos, its PyTorch logits and a request."""

from __future__ import annotations

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
