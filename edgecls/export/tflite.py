"""TFLite (LiteRT) export through litert-torch and ai-edge-quantizer, without TensorFlow.

Every precision starts from one float32 flatbuffer written by ``litert_torch.convert``:

- fp32: that flatbuffer.
- fp16: its conv / depthwise / fully-connected weights stored as float16 (ai-edge-quantizer float
  casting, dequantized at load); arithmetic stays float32, like TensorFlow's fp16 post-training
  quantization, so the file halves and any CPU runs it.
- int8: full-integer static quantization (ai-edge-quantizer ``static_wi8_ai8``): per-channel int8
  weights, int8 activations whose ranges are the min / max over ``request.calibration`` run through
  the float model; the input and output tensors are int8 with a scale and zero point, which the
  LiteRT runner uses to quantize inputs and dequantize logits. In MobileViT and Mobile-Former the
  softmax alone stays float (see _full_integer); every other op, norms included, runs in int8.

Why not litert-torch's PT2E quantizer for int8: it annotates only conv / linear / add / mul / cat /
pools, so attention and normalisation of MobileViT v2 and Mobile-Former stay float between
dequantize / quantize pairs, and litert-torch 0.10's layout pass crashes on Mobile-Former's QDQ
graph ("Attempting to convert non-NHWC compatible node to NHWC": ``insert_t_q_dq`` overwrites the
meta of a dequantize node shared by an NCHW and an NHWC consumer). Quantizing the converted
flatbuffer covers those ops in integer and needs no second torch conversion.

``request.input_type == "uint8"``: the model arrives behind edgecls.export.app_input's byte-input
wrapper and is traced with a uint8 example, so the flatbuffer's input tensor is uint8 (no
quantization parameters) and a CAST to float its first op; calibration and parity feed bytes. int8
keeps that uint8 input (the quantizer starts after the CAST) and an int8 output.

``request.nhwc`` wraps the model so the artifact takes (N, H, W, C) as mobile apps feed camera
frames; the logits stay (N, classes). The batch is static (``request.batch``): litert-torch 0.10
cannot lower a dynamic batch dimension (``torch.export.Dim`` on the input fails in its reshape
lowering, "Shapes must be 1D sequences of concrete values"; upstream litert-torch issues #679 and
#685), so ``request.dynamic_batch`` is refused with that advice rather than silently ignored. An app
needing several batch sizes exports one file per size.

The float32 flatbuffer is kept in ``request.workdir`` so the fp16 and int8 exports of the same
run reuse it instead of converting again (its name carries a fingerprint of the weights and shape).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError, MissingDependencyError
from edgecls.export.base import Exporter, ExportRequest

SIGNATURE = "serving_default"  # the one signature litert-torch writes
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")


@dataclass
class TFLiteInt8Settings:
    """ai-edge-quantizer settings (the ``[tflite.int8]`` table of a target profile)."""

    # "minmax": the range over the whole calibration set; "moving_average": the quantizer's own
    # default (per-sample ranges averaged with factor 0.95, so outliers are partly clipped);
    # "percentile": per tensor, the given percentile of the per-sample maxima (and the mirrored
    # one of the minima), a robust range that ignores the few most extreme images.
    activation_range: str = "minmax"
    percentile: float = 99.0
    per_channel: bool = True  # per-channel (else per-tensor) int8 weights
    activation_bits: int = 8  # 16: int16 activations x int8 weights (more accurate; XNNPACK runs it slower)
    # Ops left in float: output tensor names, or "first" / "last" for the first / last conv or
    # fully-connected op. The accuracy budget adds the most sensitive ops here.
    float_ops: list = field(default_factory=list)
    # Fold the mean output shift of each layer's weight rounding back into its int32 bias
    # (edgecls.export.bias_correction; measured in the target profiles). int8 activations only.
    bias_correction: bool = True

    @classmethod
    def from_request(cls, request: ExportRequest) -> "TFLiteInt8Settings":
        table = dict((request.options.get("tflite", {}) or {}).get("int8") or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown [tflite.int8] setting(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
        settings = cls(**table)
        if settings.activation_range not in ("minmax", "moving_average", "percentile"):
            raise InvalidArgumentError("[tflite.int8] activation_range must be minmax, moving_average or percentile, "
                                       f"not {settings.activation_range!r}")
        if settings.activation_bits not in (8, 16):
            raise InvalidArgumentError(f"[tflite.int8] activation_bits must be 8 or 16, not {settings.activation_bits!r}")
        if not isinstance(settings.bias_correction, bool):
            raise InvalidArgumentError(f"[tflite.int8] bias_correction must be true or false, not {settings.bias_correction!r}")
        if not isinstance(settings.float_ops, list) or not all(isinstance(n, str) for n in settings.float_ops):
            raise InvalidArgumentError("[tflite.int8] float_ops must be a list of op output names or 'first' / 'last'")
        return settings


def compute_ops(content: bytes) -> list[str]:
    """Scopes (output tensor names) of the conv / fully-connected ops in execution order."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    model = tfl.read_model(bytearray(content))
    subgraph = model.subgraphs[0]

    def op_name(index: int) -> str | None:
        try:
            return tfl.get_op_name_by_index(model, 0, index)
        except KeyError:  # an op code the quantizer has no name for (e.g. 82 in MobileViT): not a compute op
            return None

    return [tfl.get_op_scope(op, subgraph.tensors) for index, op in enumerate(subgraph.operators)
            if op_name(index) in COMPUTE_OPS]


def resolve_float_ops(content: bytes, names: list[str]) -> list[str]:
    if not names:
        return []
    from edgecls.export.base import resolve_kept_float

    ops = compute_ops(content)
    return resolve_kept_float(names, ops, set(ops), "[tflite.int8] float_ops", "conv / fully-connected op")


def _percentile_ranges(samples: dict[str, list[dict]], percentile: float) -> dict[str, dict]:
    """Per tensor, the ``percentile`` of per-sample maxima and the mirrored one of the minima."""
    ranges = {}
    for name, qsvs in samples.items():
        mins = np.stack([np.asarray(q["min"], dtype=np.float32) for q in qsvs])
        maxs = np.stack([np.asarray(q["max"], dtype=np.float32) for q in qsvs])
        ranges[name] = {"min": np.percentile(mins, 100 - percentile, axis=0).astype(np.float32),
                        "max": np.percentile(maxs, percentile, axis=0).astype(np.float32)}
    return ranges


# Smallest calibrated activation range: an int8 scale of at least 2**-12 (see _at_least_min_span).
MIN_ACTIVATION_SPAN = 255 * 2.0**-12


class TFLiteExporter(Exporter):
    format = "tflite"

    @classmethod
    def check_settings(cls, options: dict[str, Any], precisions: list[str]) -> None:
        unknown = sorted(set(options) - {"int8"})
        if unknown:
            raise InvalidArgumentError(f"unknown [tflite] setting(s) {', '.join(unknown)}: use the [tflite.int8] table")
        # The same parser the export uses, so a typo is found before anything is built.
        TFLiteInt8Settings.from_request(SimpleNamespace(options={"tflite": options}))

    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        if precision not in self.precisions:
            raise InvalidArgumentError(
                f"TFLite has no precision '{precision}': use one of {', '.join(self.precisions)}"
            )
        if precision == "int8" and (request.calibration is None or len(request.calibration) == 0):
            raise InvalidArgumentError("TFLite int8 needs calibration images to set its activation ranges")
        if request.dynamic_batch:
            raise InvalidArgumentError(
                "TFLite export needs a static batch (litert-torch cannot convert a dynamic one): "
                "drop the dynamic batch for tflite and give --batch N"
            )
        if int(request.batch) < 1:
            raise InvalidArgumentError(f"batch must be at least 1, got {request.batch}")
        content = _float32_flatbuffer(request)
        if precision == "fp16":
            content = _float16_weights(content)
        elif precision == "int8":
            content = _full_integer(content, request)
        from edgecls.export.onnx import artifact_metadata
        from edgecls.runtime.litert import add_tflite_metadata

        # The same metadata as the ONNX and OpenVINO artifacts (labels, mean/std, resolution, layout).
        content = add_tflite_metadata(content, artifact_metadata(request, precision))
        Path(dest).write_bytes(content)


# -- float32 conversion ------------------------------------------------------------------------


def _float32_flatbuffer(request: ExportRequest) -> bytes:
    """The converted float32 model, from the run's workdir when this run converted it already."""
    cached = None
    if request.workdir is not None and Path(request.workdir).is_dir():
        cached = Path(request.workdir) / f"tflite-fp32-{_fingerprint(request)}.tflite"
        if cached.is_file():
            return cached.read_bytes()
    content = _convert(request)
    if cached is not None:
        partial = cached.with_suffix(".partial")
        partial.write_bytes(content)
        partial.replace(cached)  # atomic: a reader never sees half a file
    return content


def _fingerprint(request: ExportRequest) -> str:
    """What makes two float32 conversions identical: the weights, the input shape and layout."""
    digest = hashlib.sha1()
    shape = (int(request.batch), int(request.resolution), bool(request.nhwc), getattr(request, "input_type", "float32"))
    digest.update(f"{getattr(request.info, 'name', '')}|{shape}".encode())
    for name, tensor in request.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _convert(request: ExportRequest) -> bytes:
    litert_torch = _import_litert_torch()
    import torch

    module = request.model
    if request.nhwc:
        module = litert_torch.to_channel_last_io(module, args=[0]).eval()
    sample = torch.from_numpy(_sample_input(request))
    try:
        with _env("LITERT_TORCH_SHOW_PROGRESS", "n"):  # its per-step progress lines would flood the export log
            edge_model = litert_torch.convert(module, (sample,))
            return bytes(edge_model.model_content())
    except Exception as exc:  # the converter raises many types; its first line says why
        raise EdgeclsError(f"litert-torch cannot convert {_model_name(request)}: {_first_line(exc)}") from exc


def _sample_input(request: ExportRequest) -> np.ndarray:
    """The traced input in the artifact's layout: a calibration image (else seeded noise), repeated
    to the batch."""
    rows = int(request.batch)
    if request.calibration is not None and len(request.calibration):
        first = np.asarray(request.calibration[:1], dtype=np.float32)
    else:
        first = np.random.default_rng(0).standard_normal((1, 3, request.resolution, request.resolution))
    return _layout(request, np.repeat(first, rows, axis=0))


def _layout(request: ExportRequest, nchw: np.ndarray) -> np.ndarray:
    """``nchw`` in the artifact's layout and input dtype: uint8 for a byte-input model
    (``--input-type uint8``: traced with bytes, the flatbuffer's input tensor is uint8 and a CAST
    its first op), float32 otherwise."""
    from edgecls.export.app_input import as_input

    nchw = as_input(nchw, request, "tflite")
    return np.ascontiguousarray(nchw.transpose(0, 2, 3, 1) if request.nhwc else nchw)


# -- quantization ------------------------------------------------------------------------------


def _float16_weights(content: bytes) -> bytes:
    """The float32 flatbuffer with conv / fully-connected weights stored as float16."""
    aeq = _import_quantizer()
    weight_only_fp16 = aeq.qtyping.OpQuantizationConfig(
        weight_tensor_config=aeq.qtyping.TensorQuantizationConfig(
            num_bits=16, dtype=aeq.qtyping.TensorDataType.FLOAT
        ),
        compute_precision=aeq.qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
    )
    fp16 = aeq.quantizer.Quantizer(bytearray(content))
    fp16.update_quantization_recipe(
        regex=".*",
        operation_name=aeq.qtyping.TFLOperationName.ALL_SUPPORTED,
        op_config=weight_only_fp16,
        algorithm_key=aeq.algorithm_manager.AlgorithmName.FLOAT_CASTING,
    )
    return bytes(fp16.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)


def _full_integer(content: bytes, request: ExportRequest, settings: "TFLiteInt8Settings | None" = None) -> bytes:
    """The float32 flatbuffer quantized to int8 weights and activations, calibrated on the request's images."""
    aeq = _import_quantizer()
    settings = settings or TFLiteInt8Settings.from_request(request)
    recipe_manager = int8_recipe(content, request, settings)
    input_name = _input_name(content)
    samples = [{input_name: batch} for batch in _calibration_batches(request)]
    try:
        with warnings.catch_warnings():
            # Calibration keeps every intermediate tensor on purpose; the interpreter's debugging warning is noise.
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            ranges = calibrated_ranges(content, samples, recipe_manager, settings)
            int8 = aeq.quantizer.Quantizer(bytearray(content), recipe_manager.get_quantization_recipe())
            result = int8.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
            quantized = bytes(result.quantized_model)
            if settings.bias_correction and settings.activation_bits == 8:
                from edgecls.export.bias_correction import correct_tflite_biases

                quantized, _ = correct_tflite_biases(quantized, content, _calibration_batches(request))
        return quantized
    except Exception as exc:
        raise EdgeclsError(
            f"ai-edge-quantizer cannot quantize {_model_name(request)} to int8: {_first_line(exc)}"
        ) from exc


def int8_recipe(content: bytes, request: ExportRequest, settings: TFLiteInt8Settings):
    """The quantizer's recipe manager for ``settings`` (full integer, the float ops left out)."""
    aeq = _import_quantizer()
    granularity = aeq.qtyping.QuantGranularity.CHANNELWISE if settings.per_channel else aeq.qtyping.QuantGranularity.TENSORWISE
    recipe_manager = aeq.recipe_manager.RecipeManager()
    recipe_manager.add_static_config(regex=".*", operation_name=aeq.qtyping.TFLOperationName.ALL_SUPPORTED,
                                     activation_num_bits=settings.activation_bits, weight_num_bits=8,
                                     weight_granularity=granularity)  # 8/8 channelwise = recipe.static_wi8_ai8()
    if request.is_attention_model:
        # Softmax stays float: TFLite's int8 softmax has a fixed output scale of 1/256, too coarse
        # for attention weights that sharpen on a few tokens. Measured on random-weight
        # mobileformer_52m at 224 px: min cosine 0.884 with an int8 softmax, 0.998 with a float one
        # (no other single op type moved it by more than 0.005).
        recipe_manager.add_quantization_config(regex=".*", operation_name=aeq.qtyping.TFLOperationName.SOFTMAX,
                                               algorithm_key=aeq.algorithm_manager.AlgorithmName.NO_QUANTIZE)
    for scope in resolve_float_ops(content, settings.float_ops):  # later, narrower entries win
        recipe_manager.add_quantization_config(regex=f"^{re.escape(scope)}$",
                                               operation_name=aeq.qtyping.TFLOperationName.ALL_SUPPORTED,
                                               algorithm_key=aeq.algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return recipe_manager


def calibrated_ranges(content: bytes, samples: list[dict], recipe_manager, settings: TFLiteInt8Settings) -> dict:
    """Activation ranges of every tensor over ``samples``, by ``settings.activation_range``.

    "minmax" is the default: the quantizer's own moving average (factor 0.95) of per-sample ranges
    remembers only the last ~20 samples and clips the rest: on tf_efficientnet_lite0 @ 96 px with
    100 images it kept the top-1 of 4 of the 9 built-in photos, against 8 of 9 with the global range.
    """
    aeq = _import_quantizer()
    threads = os.cpu_count() or 1
    if settings.activation_range == "percentile":
        collected: dict[str, list[dict]] = {}
        for sample in samples:  # one sample per call: the per-sample ranges are what the percentile needs
            calibrator = aeq.calibrator.Calibrator(bytearray(content), num_threads=threads,
                                                   qsv_update_func=aeq.qsv_utils.min_max_update)
            calibrator.calibrate({SIGNATURE: [sample]}, recipe_manager)
            for name, qsv in calibrator.get_model_qsvs().items():
                if isinstance(qsv, dict) and "min" in qsv and "max" in qsv:
                    collected.setdefault(name, []).append(qsv)
        ranges = _percentile_ranges(collected, settings.percentile)
    else:
        update = aeq.qsv_utils.min_max_update if settings.activation_range == "minmax" else aeq.qsv_utils.moving_average_update
        calibrator = aeq.calibrator.Calibrator(bytearray(content), num_threads=threads, qsv_update_func=update)
        calibrator.calibrate({SIGNATURE: samples}, recipe_manager)
        ranges = calibrator.get_model_qsvs()
    return {name: _at_least_min_span(qsv) for name, qsv in ranges.items()}


def _at_least_min_span(qsv: dict) -> dict:
    """A tensor's calibrated range widened to at least MIN_ACTIVATION_SPAN.

    A bias is stored in int32 at scale input_scale * weight_scale; after an activation that is ~0
    on every calibration image (random-init MobileNet / EfficientNet features vanish to 1e-8) that
    scale is ~1e-14, the bias overflows int32 and the logits come out as garbage instead of the
    bias. litert-torch's own PT2E config floors activation scales the same way (eps=2**-12).
    """
    if not isinstance(qsv, dict) or "min" not in qsv or "max" not in qsv:
        return qsv
    low = np.asarray(qsv["min"], dtype=np.float32)
    high = np.maximum(np.asarray(qsv["max"], dtype=np.float32), low + MIN_ACTIVATION_SPAN)
    return {**qsv, "max": high.astype(np.asarray(qsv["max"]).dtype)}


def _input_name(content: bytes) -> str:
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_content=content).get_signature_list()[SIGNATURE]
    return signature["inputs"][0]


def _calibration_batches(request: ExportRequest) -> Iterator[np.ndarray]:
    """The calibration set in the artifact's layout and batch size (the last batch padded by repetition)."""
    batch = int(request.batch)
    images = np.asarray(request.calibration, dtype=np.float32)
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.resize(images, (batch - len(chunk),) + images.shape[1:])])
        yield _layout(request, chunk)


# -- helpers -----------------------------------------------------------------------------------


def _import_litert_torch() -> Any:
    try:
        import litert_torch
    except ImportError:
        raise MissingDependencyError("TFLite export needs litert-torch: pip install 'edgecls[export]'") from None
    return litert_torch


def _import_quantizer() -> Any:
    try:
        from ai_edge_quantizer import algorithm_manager, calibrator, qtyping, quantizer, recipe, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils
    except ImportError:
        raise MissingDependencyError(
            "TFLite fp16 / int8 need ai-edge-quantizer: pip install 'edgecls[export]'"
        ) from None
    return SimpleNamespace(algorithm_manager=algorithm_manager, calibrator=calibrator, qtyping=qtyping,
                           quantizer=quantizer, recipe=recipe, recipe_manager=recipe_manager, qsv_utils=qsv_utils)


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    """Set an environment variable for the block, then restore the caller's value."""
    before = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _model_name(request: ExportRequest) -> str:
    return getattr(request.info, "name", None) or type(request.model).__name__


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]


EXPORTER = TFLiteExporter
