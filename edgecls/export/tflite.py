"""TFLite (LiteRT) export through litert-torch, without TensorFlow.

- fp32: litert_torch.convert of the eval model.
- fp16: the fp32 flatbuffer with float16 weights for conv / depthwise / fully-connected layers
  (ai-edge-quantizer float casting); activations stay float32, like TensorFlow's fp16 post-training
  quantization, so the file halves and any CPU runs it.
- int8: full-integer PT2E quantization (litert-torch's PT2EQuantizer: per-channel symmetric int8
  weights, per-tensor int8 activations calibrated on ``request.calibration``); the converter folds
  the quantize / dequantize pairs into integer kernels, and the artifact's input and output are
  int8 with their scale and zero point (the LiteRT runner quantizes and dequantizes with them).

``request.nhwc`` wraps the model so the artifact takes (N, H, W, C) as mobile apps feed camera
frames; the logits stay (N, classes). The batch is static (``request.batch``) unless
``request.dynamic_batch``, which fp32 and fp16 support (the runner resizes the input); int8 asks
for a static batch because PT2E calibrates a graph specialised to one shape.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError, MissingDependencyError
from edgecls.export.base import PRECISIONS, Exporter, ExportRequest

SIGNATURE = "serving_default"  # litert-torch's name for the single signature it writes


@contextlib.contextmanager
def _quiet_converter() -> Iterator[None]:
    """Silence litert-torch's progress lines for the conversion, then restore the caller's setting."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(key)
    os.environ[key] = "n"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _import_converter() -> Any:
    try:
        import litert_torch
    except ImportError:
        raise MissingDependencyError(
            "TFLite export needs litert-torch: pip install 'edgecls[export]'"
        ) from None
    return litert_torch


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]


class TFLiteExporter(Exporter):
    format = "tflite"
    suffix = ".tflite"
    precisions = PRECISIONS
    extra = "export"

    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        if precision not in self.precisions:
            raise InvalidArgumentError(f"TFLite has no precision '{precision}': use one of {', '.join(self.precisions)}")
        if precision == "int8" and request.dynamic_batch:
            raise InvalidArgumentError(
                "TFLite int8 needs a static batch (PT2E calibrates one input shape): drop --dynamic-batch for int8"
            )
        if precision == "int8" and (request.calibration is None or len(request.calibration) == 0):
            raise InvalidArgumentError("TFLite int8 needs calibration images to set activation ranges")
        litert_torch = _import_converter()
        dest = Path(dest)
        with _quiet_converter():
            if precision == "int8":
                content = self._convert_int8(litert_torch, request)
            else:
                content = self._convert_float(litert_torch, request)
                if precision == "fp16":
                    content = _float16_weights(content)
        dest.write_bytes(content)

    # -- conversions ---------------------------------------------------------------------------

    def _module(self, litert_torch: Any, request: ExportRequest):
        """The module to convert: the model itself, or wrapped to take channels-last input."""
        if not request.nhwc:
            return request.model
        return litert_torch.to_channel_last_io(request.model, args=[0]).eval()

    def _convert_float(self, litert_torch: Any, request: ExportRequest) -> bytes:
        import torch

        sample = (torch.from_numpy(_sample_input(request)),)
        dynamic_shapes = None
        if request.dynamic_batch:
            # min=1: torch.export treats a size-1 sample as a constant, so give the sample 2 rows.
            batch_dim = torch.export.Dim("batch", min=1, max=1024)
            sample = (torch.cat([sample[0][:1]] * 2),)
            dynamic_shapes = ({0: batch_dim},)
        try:
            edge_model = litert_torch.convert(self._module(litert_torch, request), sample,
                                              dynamic_shapes=dynamic_shapes)
        except Exception as exc:  # the converter raises many types; keep the first line of its reason
            raise EdgeclsError(f"litert-torch cannot convert {request.info.name}: {_first_line(exc)}") from exc
        return bytes(edge_model.model_content())

    def _convert_int8(self, litert_torch: Any, request: ExportRequest) -> bytes:
        import torch
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e import quantize_pt2e

        module = self._module(litert_torch, request)
        sample = (torch.from_numpy(_sample_input(request)),)
        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        try:
            graph = torch.export.export(module, sample).module()
            graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for chunk in _calibration_batches(request):
                    graph(torch.from_numpy(chunk))
            graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
            edge_model = litert_torch.convert(graph, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
        except Exception as exc:
            raise EdgeclsError(f"litert-torch cannot quantize {request.info.name} to int8: {_first_line(exc)}") from exc
        return bytes(edge_model.model_content())


def _layout(request: ExportRequest, nchw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(nchw.transpose(0, 2, 3, 1) if request.nhwc else nchw, dtype=np.float32)


def _sample_input(request: ExportRequest) -> np.ndarray:
    """A traced input of the artifact's shape: a calibration image (real values keep any
    data-dependent shapes honest), else seeded noise."""
    batch = max(1, int(request.batch))
    if request.calibration is not None and len(request.calibration):
        first = np.asarray(request.calibration[:1], dtype=np.float32)
    else:
        first = np.random.default_rng(0).standard_normal((1, 3, request.resolution, request.resolution))
    return _layout(request, np.repeat(first, batch, axis=0))


def _calibration_batches(request: ExportRequest) -> Iterator[np.ndarray]:
    """The calibration set in chunks of the static batch (the last one padded by repetition)."""
    batch = max(1, int(request.batch))
    images = np.asarray(request.calibration, dtype=np.float32)
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.resize(images, (batch - len(chunk),) + images.shape[1:])])
        yield _layout(request, chunk)


def _float16_weights(content: bytes) -> bytes:
    """The fp32 flatbuffer with conv / fully-connected weights stored as float16."""
    try:
        from ai_edge_quantizer import algorithm_manager, qtyping, quantizer
    except ImportError:
        raise MissingDependencyError(
            "TFLite fp16 needs ai-edge-quantizer: pip install 'edgecls[export]'"
        ) from None
    float16 = qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT)
    weight_only = qtyping.OpQuantizationConfig(
        weight_tensor_config=float16,
        compute_precision=qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
    )
    fp16 = quantizer.Quantizer(bytearray(content))
    fp16.update_quantization_recipe(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        op_config=weight_only,
        algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
    )
    result = fp16.quantize(enable_progress_report=False)
    return bytes(result.quantized_model)


EXPORTER = TFLiteExporter
