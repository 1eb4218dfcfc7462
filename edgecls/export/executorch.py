"""ExecuTorch export: a ``.pte`` program lowered to the XNNPACK delegate, fp32 and int8.

- fp32: ``torch.export`` -> ``to_edge_transform_and_lower`` with the XNNPACK partitioner ->
  ``to_executorch``. Every op XNNPACK supports runs in the delegate, the rest in ExecuTorch's
  portable kernels (none for the zoo's CNNs).
- int8: PT2E static quantization with ExecuTorch's ``XNNPACKQuantizer`` (symmetric per-channel
  int8 weights, int8 activations) calibrated on ``request.calibration`` (the same images the other
  formats calibrate on), then lowered the same way: XNNPACK fuses the quantize / dequantize pairs
  into integer kernels. The input and output stay float32 (quantized inside the graph), so apps
  feed the same tensor as for fp32.

No fp16: XNNPACK's fp16 path runs only on CPUs with native fp16 arithmetic (ARMv8.2+); on x86 it
would fall back to fp32 and there is nothing to verify here.

The batch is static (``request.batch``); ``request.dynamic_batch`` is refused: a dynamic ``.pte``
needs an upper bound for memory planning, which an app should choose (export one file per size).

A ``.pte`` has no free-form metadata slot (constant methods hold numbers, not JSON), so the labels,
preprocessing and edgecls version go into a sidecar ``<file>.json`` listed as a side file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError, InvalidArgumentError, MissingDependencyError
from edgecls.export.app_input import as_input
from edgecls.export.base import Exporter, ExportRequest
from edgecls.runtime.base import sidecar_of

INSTALL_HINT = "pip install 'edgecls[executorch]'"


def _import_executorch() -> Any:
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError:
        raise MissingDependencyError(f"ExecuTorch export needs executorch: {INSTALL_HINT}") from None
    return XnnpackPartitioner, to_edge_transform_and_lower


def write_sidecar(request: ExportRequest, precision: str, dest: Path, extra: dict | None = None) -> None:
    """The artifact's metadata (the same keys as the ONNX metadata props, plus ``extra``) as ``<dest>.json``."""
    from edgecls.export.onnx import artifact_metadata

    props = artifact_metadata(request, precision)
    decoded = {}
    for key, value in props.items():
        try:  # ONNX props are strings; the sidecar keeps lists and numbers as JSON values
            decoded[key] = json.loads(value) if key in ("mean", "std", "labels", "num_classes", "resolution", "crop_pct") else value
        except (TypeError, ValueError):
            decoded[key] = value
    sidecar_of(dest).write_text(json.dumps({**decoded, **(extra or {})}, indent=1) + "\n")


class ExecuTorchExporter(Exporter):
    format = "executorch"

    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        partitioner, lower = _import_executorch()
        self.check_static_request(request, precision, "ExecuTorch")
        import torch

        from edgecls.export.onnx import channels_last_input

        module = channels_last_input(request.model) if request.nhwc else request.model
        sample = (torch.from_numpy(example_batch(request, request.calibration[:1] if request.calibration is not None
                                           and len(request.calibration) else None)),)
        try:
            with torch.no_grad():
                if precision == "int8":
                    module = _quantized(module, sample, request)
                program = torch.export.export(module, sample)
                lowered = lower(program, partitioner=[partitioner()]).to_executorch()
        except MissingDependencyError:
            raise
        except Exception as exc:  # torch.export and the lowering raise many types; the first line says why
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EdgeclsError(f"ExecuTorch cannot lower {request.info.name} ({precision}): {first}") from exc
        Path(dest).write_bytes(lowered.buffer)
        # The input spec too: `edgecls info` reads it where the runtime (which needs torch) is absent.
        write_sidecar(request, precision, dest, extra={"input_shape": list(sample[0].shape),
                                                      "input_dtype": str(sample[0].dtype).replace("torch.", "")})


def _quantized(module, sample, request: ExportRequest):
    """``module`` after PT2E: XNNPACK int8 observers calibrated on the request's images, converted."""
    import torch

    try:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        raise MissingDependencyError(f"ExecuTorch int8 needs executorch and torchao: {INSTALL_HINT}") from None
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(module, sample).module(), quantizer)
    for chunk in calibration_batches(request):
        prepared(torch.from_numpy(chunk))
    return convert_pt2e(prepared)


def calibration_batches(request: ExportRequest):
    """The calibration images in the artifact's layout and static batch (the last one padded by repetition)."""
    import numpy as np

    images = np.asarray(request.calibration)
    batch = int(request.batch)
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        if len(chunk) < batch:  # the graph is exported for one batch size
            chunk = np.concatenate([chunk, np.resize(images, (batch - len(chunk),) + images.shape[1:])])
        yield example_batch(request, chunk)


def example_batch(request: ExportRequest, nchw):
    """``nchw`` images (or seeded noise when None) repeated to the batch, in the artifact's layout."""
    import numpy as np

    if nchw is None:
        nchw = np.random.default_rng(0).standard_normal((1, 3, request.resolution, request.resolution))
    nchw = as_input(nchw, request, "executorch")  # uint8 for a byte-input program: the cast runs inside it
    if len(nchw) != request.batch:
        nchw = np.resize(nchw, (int(request.batch),) + nchw.shape[1:])
    return np.ascontiguousarray(nchw.transpose(0, 2, 3, 1) if request.nhwc else nchw)


EXPORTER = ExecuTorchExporter
