"""OpenVINO IR (.xml + .bin): fp32, fp16 (compressed weights), bf16 and int8.

int8 has two quantizers (``[openvino.int8] quantizer``). "onnxruntime" (the default for CNNs
whose activations are ReLU / ReLU6, see QDQ_SUITED_OPS):
onnxruntime's static QDQ quantization of the fp32 ONNX, with the profile's ``[onnx.int8]``
settings, converted by OpenVINO's ONNX frontend (its QuantizeLinear/DequantizeLinear pairs become
FakeQuantize, which the CPU plugin runs as int8 kernels). "nncf": NNCF post-training quantization
of the IR (the default for attention models, where NNCF's transformer mode is measured, and for
squeeze-excite / swish CNNs, which OpenVINO runs faster from NNCF's placement).
Why onnxruntime for CNNs, measured 2026-12-06 on a Sapphire Rapids Xeon (AVX-512 VNNI, AMX), 1
thread, OpenVINO 2026.4.1, NNCF 3.4.0, pretrained tf_efficientnet_lite0 at 224 px, 100 built-in
calibration views, the 64 held-out parity views (top-1 agreement with PyTorch, mean / min cosine):

    onnxruntime QDQ int8 run by onnxruntime          92.2 %   0.9956 / 0.9921
    the same QDQ file run by OpenVINO (this route)    95.3 %   0.9952 / 0.9911   p50 4.86 ms
    NNCF defaults (full bias correction, 7-bit)       76.6 %   0.9129 / 0.6725   p50 5.04 ms

(fp32 IR 9.8 ms on the same loaded machine). Every NNCF recipe tried landed at 0.91 mean cosine
(benchmarks/int8_recipes.md, benchmarks/openvino_int8_layers.txt): the same OpenVINO int8
kernels run onnxruntime's quantization at 0.995, so the loss is in NNCF's ranges, not the kernels.

bf16 is an execution precision: its IR is the fp32 IR (fp32 weights) whose rt_info says
``execution_precision=bf16``; edgecls's runner compiles it with ``INFERENCE_PRECISION_HINT=bf16``
(and every other IR with f32), reads back the precision the CPU plugin chose, and the export marks
the artifact unverified when that is not bf16 (a CPU without AVX512_BF16 / AMX runs it in f32).

Float IRs (and NNCF's int8) are converted straight from the PyTorch module with OpenVINO's PyTorch
frontend, not from the fp32 ONNX of the ONNX format (the onnxruntime int8 route reads the run's
fp32 ONNX, and falls back to NNCF under "auto" when that capture or quantization fails): that keeps this format independent of another exporter's file, its
opset and its graph clean-ups (onnxslim), so a failure of one format cannot break the other, and
it is the path OpenVINO itself maintains as primary. The module is captured with
``torch.export`` (symbolic batch dimension, the capture torch keeps developing); a model that
torch.export rejects (data-dependent Python control flow) falls back to TorchScript tracing,
which OpenVINO's frontend has supported the longest.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgecls.errors import InvalidArgumentError, MissingDependencyError
from edgecls.export.app_input import as_input, input_dtype
from edgecls.export.base import ExportRequest, Exporter

# TRANSFORMER_FAMILIES get NNCF's transformer model type: it leaves the attention's
# normalizations and softmax-side arithmetic unquantized and smooths activation outliers before
# the matmuls. Measured (36 photos, 128px, AVX2, overflow fix on): mobilevitv2_050 int8 cosine
# to fp32 0.880 with the CNN defaults, 0.991 in transformer mode.


@dataclass
class OpenVinoInt8Settings:
    """NNCF settings (the ``[openvino.int8]`` table of a target profile)."""

    # "enable": 7-bit weights in every layer, safe on AVX2-only CPUs (see _quantize);
    # "first_layer_only" (NNCF's default) or "disable" suit IRs that will only meet VNNI/AMX CPUs.
    overflow_fix: str = "enable"
    # "auto": transformer mode for TRANSFORMER_FAMILIES, CNN defaults otherwise.
    model_type: str = "auto"
    # "auto": full bias correction for CNNs, the fast one for attention models (the full one is
    # known to hang on transformer graphs). Measured on pretrained tf_efficientnet_lite0 at 224 px,
    # 100 built-in calibration views, AVX2: top-1 agreement on the 24 parity views 22/24 fast,
    # 23/24 full (cosine 0.965 vs 0.962).
    bias_correction: str = "auto"
    # NNCF preset: "performance" (symmetric activations, NNCF's CNN default) or "mixed" (asymmetric
    # activations: a zero point, so ReLU6 outputs use all 256 levels).
    preset: str = "performance"
    # Layers left in float (NNCF ignored scope): friendly names of ov ops, or "first" / "last" for
    # the first / last Convolution or MatMul. The accuracy budget adds the most sensitive ones.
    float_layers: list = field(default_factory=list)
    # SmoothQuant's alpha for MatMuls in transformer mode (NNCF's default 0.95; negative disables);
    # CNNs have no MatMul for it to smooth besides the classifier, so it is used only in transformer mode.
    smooth_quant_alpha: float | None = None
    # "auto": onnxruntime's QDQ for ReLU / ReLU6 CNNs, NNCF for attention models and squeeze-excite /
    # swish CNNs (see the module docstring and QDQ_SUITED_OPS);
    # "onnxruntime" or "nncf" for every model. The settings above are NNCF's; with onnxruntime the
    # profile's [onnx.int8] table applies (its float_nodes keep layers float).
    quantizer: str = "auto"

    def quantizer_for(self, request: ExportRequest) -> str:
        if self.quantizer != "auto":
            return self.quantizer
        return "nncf" if _is_attention_model(request, self) else "onnxruntime"

    @classmethod
    def from_request(cls, request: ExportRequest) -> "OpenVinoInt8Settings":
        return cls.from_options(request.options.get("openvino"))

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> "OpenVinoInt8Settings":
        """From the [openvino] table of a target profile."""
        options = dict(options or {})
        unknown = sorted(set(options) - {"int8"})
        if unknown:
            raise InvalidArgumentError(f"unknown [openvino] setting(s) {', '.join(unknown)}: use the [openvino.int8] table")
        table = dict(options.get("int8") or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown [openvino.int8] setting(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
        settings = cls(**table)
        choices = {"overflow_fix": ("enable", "first_layer_only", "disable"), "model_type": ("auto", "cnn", "transformer"),
                   "bias_correction": ("auto", "fast", "full"), "preset": ("performance", "mixed"),
                   "quantizer": ("auto", "onnxruntime", "nncf")}
        for name, allowed in choices.items():
            if getattr(settings, name) not in allowed:
                raise InvalidArgumentError(
                    f"[openvino.int8] {name} must be one of {', '.join(allowed)}, not {getattr(settings, name)!r}")
        if not isinstance(settings.float_layers, list) or not all(isinstance(n, str) for n in settings.float_layers):
            raise InvalidArgumentError("[openvino.int8] float_layers must be a list of layer names or 'first' / 'last'")
        if settings.float_layers and settings.quantizer == "onnxruntime":
            raise InvalidArgumentError("[openvino.int8] float_layers are NNCF's: with quantizer = \"onnxruntime\" keep "
                                       "layers float with [onnx.int8] float_nodes, or set quantizer = \"nncf\"")
        return settings


@contextlib.contextmanager
def _telemetry_disabled() -> Iterator[None]:
    """OpenVINO's converter and NNCF send usage telemetry unless a consent file says no; an
    export must not touch the network, so switch both off for the duration of the call (they
    honour these variables: ovc skips telemetry in CI, NNCF picks its stub at import)."""
    saved = {key: os.environ.get(key) for key in ("CI", "NNCF_CI")}
    os.environ["CI"] = "true"
    os.environ["NNCF_CI"] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _import_openvino():
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("OpenVINO export needs openvino: pip install 'edgecls[export]'") from None
    return ov


def _example_batch(request: ExportRequest, size: int):
    """Real calibration images as the trace example when there are any (a random tensor can
    steer data-dependent code down a path real inputs never take)."""
    import torch

    shape = (size, 3, request.resolution, request.resolution)
    calibration = None if request.calibration is None else np.asarray(request.calibration, dtype=np.float32)
    if calibration is not None and len(calibration) and calibration.shape[1:] == shape[1:]:
        rows = np.resize(calibration, shape)
        return torch.from_numpy(np.ascontiguousarray(rows))
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _converted_fp32(ov: Any, request: ExportRequest) -> tuple[Any, str]:
    """The plain fp32 conversion, made once per export run: the pipeline calls each precision in
    its own process, so the first one leaves the IR in the run's workdir for the others."""
    batch_tag = "dyn" if request.dynamic_batch else f"b{int(request.batch)}"
    dtype_tag = input_dtype(request, "openvino")
    cached = Path(request.workdir) / f"openvino_fp32_{request.resolution}_{batch_tag}_{dtype_tag}.xml"
    if cached.is_file() and cached.with_suffix(".bin").is_file():
        ov_model = ov.Core().read_model(str(cached))
        return ov_model, ov_model.get_rt_info(["edgecls", "converter"]).astype(str)
    ov_model, converter = _convert(ov, request)
    if dtype_tag == "uint8":
        # The wrapper was traced with float bytes; OpenVINO's own preprocessing makes the input u8
        # with a Convert in front, so an app passes the frame's bytes (no torch tracing of uint8 needed).
        ppp = ov.preprocess.PrePostProcessor(ov_model)
        ppp.input().tensor().set_element_type(ov.Type.u8)
        ov_model = ppp.build()
    ov_model.set_rt_info(converter, ["edgecls", "converter"])
    # Write under a temporary name and rename the .xml last, so a reader never sees half an IR.
    partial = cached.with_name(f"{cached.stem}.{os.getpid()}.partial.xml")
    cached.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(partial), compress_to_fp16=False)
    os.replace(partial.with_suffix(".bin"), cached.with_suffix(".bin"))
    os.replace(partial, cached)
    return ov_model, converter


def _convert(ov: Any, request: ExportRequest) -> tuple[Any, str]:
    """fp32 ov.Model with NCHW input of batch -1 (dynamic) or request.batch; and how it was captured."""
    import torch

    resolution = request.resolution
    batch = -1 if request.dynamic_batch else int(request.batch)
    input_shape = [(batch, 3, resolution, resolution)]
    model = request.model.eval()
    try:
        if request.dynamic_batch:
            # torch.export specializes sizes 0 and 1, so a symbolic batch needs an example of 2.
            example = _example_batch(request, 2)
            dynamic = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        else:
            example = _example_batch(request, batch)
            dynamic = None
        with torch.no_grad():
            program = torch.export.export(model, (example,), dynamic_shapes=dynamic)
        with _telemetry_disabled():
            return ov.convert_model(program, input=input_shape), "torch.export"
    except Exception as export_error:  # noqa: BLE001 - any capture failure gets the second route
        reason = (str(export_error).strip().splitlines() or [type(export_error).__name__])[0][:160]
    with torch.no_grad(), _telemetry_disabled():
        converted = ov.convert_model(model, example_input=_example_batch(request, max(batch, 1)), input=input_shape)
    converted.set_rt_info(reason, ["edgecls", "torch_export_failure"])
    return converted, "torch.jit.trace"


def _is_attention_model(request: ExportRequest, settings: OpenVinoInt8Settings) -> bool:
    if settings.model_type != "auto":
        return settings.model_type == "transformer"
    return request.is_attention_model


def _checked_calibration(request: ExportRequest) -> np.ndarray:
    calibration = request.calibration
    if calibration is None or len(calibration) == 0:
        raise InvalidArgumentError("int8 export needs calibration images: pass a calibration folder or keep the built-in photos")
    calibration = np.asarray(calibration, dtype=np.float32)
    expected = (3, request.resolution, request.resolution)
    if calibration.ndim != 4 or calibration.shape[1:] != expected:
        raise InvalidArgumentError(
            f"calibration arrays must be (N, {', '.join(map(str, expected))}) NCHW, got {calibration.shape}"
        )
    return calibration


COMPUTE_OP_TYPES = ("Convolution", "GroupConvolution", "MatMul")


def compute_layers(ov_model: Any) -> list[str]:
    """Friendly names of the Convolution / MatMul ops in execution order: the candidates to keep float."""
    return [op.get_friendly_name() for op in ov_model.get_ordered_ops() if op.get_type_name() in COMPUTE_OP_TYPES]


def resolve_float_layers(ov_model: Any, names: list[str]) -> list[str]:
    from edgecls.export.base import resolve_kept_float

    return resolve_kept_float(names, compute_layers(ov_model), {op.get_friendly_name() for op in ov_model.get_ordered_ops()},
                              "[openvino.int8] float_layers", "layer")


def calibration_batches(request: ExportRequest, batch: int, images: np.ndarray | None = None) -> list[np.ndarray]:
    """``images`` (default: the calibration set) as static batches; wraps around to fill the last one."""
    images = _checked_calibration(request) if images is None else images
    expected = images.shape[1:]
    count = max(1, -(-len(images) // batch))
    images = as_input(images, request, "openvino")  # uint8 for a byte-input IR
    return [np.ascontiguousarray(np.resize(images, (count * batch, *expected))[i * batch:(i + 1) * batch])
            for i in range(count)]


def nncf_arguments(ov_model: Any, request: ExportRequest, settings: OpenVinoInt8Settings) -> dict[str, Any]:
    """The keyword arguments of nncf.quantize (and quantize_with_accuracy_control) for ``settings``."""
    import nncf
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters, AdvancedSmoothQuantParameters,
                                                       OverflowFix)

    options: dict[str, Any] = {}
    attention = _is_attention_model(request, settings)
    if attention:
        options["model_type"] = nncf.ModelType.TRANSFORMER
    if settings.preset == "mixed":
        options["preset"] = nncf.QuantizationPreset.MIXED
    float_layers = resolve_float_layers(ov_model, settings.float_layers)
    if float_layers:
        options["ignored_scope"] = nncf.IgnoredScope(names=float_layers)
    advanced: dict[str, Any] = {"overflow_fix": OverflowFix(settings.overflow_fix)}
    if attention and settings.smooth_quant_alpha is not None:
        advanced["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(matmul=float(settings.smooth_quant_alpha))
    options["fast_bias_correction"] = settings.bias_correction == "fast" or (settings.bias_correction == "auto" and attention)
    # x86 CPUs without VNNI (AVX2 only) multiply u8 x i8 pairs into saturating int16 sums;
    # with full 8-bit weights those sums overflow and int8 drifts from fp32. An IR may run
    # on any CPU, so the default keeps weights to 7 bits in every layer, not only the
    # first (NNCF's default). Measured on an AVX2 machine, 36 photos at 128px:
    # tf_efficientnet_lite0 (pretrained) cosine to fp32 0.948 -> 0.982, top-1 agreement
    # 7/9 -> 8/9; mobilevitv2_050 0.947 -> 0.991.
    options["advanced_parameters"] = AdvancedQuantizationParameters(**advanced)
    return options


def record_settings(quantized: Any, settings: OpenVinoInt8Settings, options: dict[str, Any], calibration_images: int) -> None:
    quantized.set_rt_info("nncf", ["edgecls", "int8_quantizer"])
    quantized.set_rt_info(settings.overflow_fix, ["edgecls", "int8_overflow_fix"])
    quantized.set_rt_info("transformer" if "model_type" in options else "cnn", ["edgecls", "int8_model_type"])
    quantized.set_rt_info("fast" if options["fast_bias_correction"] else "full", ["edgecls", "int8_bias_correction"])
    quantized.set_rt_info(settings.preset, ["edgecls", "int8_preset"])
    ignored = options.get("ignored_scope")
    quantized.set_rt_info(",".join(ignored.names) if ignored else "", ["edgecls", "int8_float_layers"])
    quantized.set_rt_info(str(calibration_images), ["edgecls", "int8_calibration_images"])


def _quantize(ov_model: Any, request: ExportRequest, batch: int, settings: OpenVinoInt8Settings) -> Any:
    calibration = _checked_calibration(request)
    with _telemetry_disabled():
        import nncf

        batches = calibration_batches(request, batch)
        options = nncf_arguments(ov_model, request, settings)
        quantized = nncf.quantize(
            ov_model,
            nncf.Dataset(batches),
            subset_size=len(batches),
            **options,
        )
    record_settings(quantized, settings, options, len(calibration))
    return quantized


# ONNX ops whose QDQ placement OpenVINO runs as fast as NNCF's: convolutions with removable
# activations (ReLU / ReLU6 fold into the output range). Squeeze-excite and swish / hard-swish
# graphs (Sigmoid, HardSigmoid, Mul) get QuantizeLinear pairs around every elementwise op, which
# OpenVINO runs slower than NNCF's convolution-input placement. Measured 2026-12-06 (Sapphire
# Rapids Xeon, 1 thread, loaded machine, interleaved rounds in one process, median of 15 round
# medians, random weights): mobilenetv3_large_100 onnxruntime QDQ 12.8-16.8 ms, the same without
# QDQ on Sigmoid/Mul/HardSigmoid 11.7 ms, NNCF 7.4-10.1 ms; efficientnet_b0 31.3-37.4 / 24.0 /
# 20.4-24.5 ms; ReLU6 / ReLU graphs: mobilenetv2_100 8.1 vs NNCF 7.5 ms, squeezenet1_1 3.8 vs
# 4.8 ms, tf_efficientnet_lite0 4.9 vs 5.0 ms (p50, edgecls bench). Quantizing only the Conv
# inputs is no way out: onnxruntime then quantizes each conv output before its ReLU6 (the Clip is
# not fused), and pretrained Lite0 falls to 0.919 mean cosine (73 % agreement) in onnxruntime's own
# float simulation as in OpenVINO.
QDQ_SUITED_OPS = frozenset({"Conv", "Clip", "Relu", "Add", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool",
                            "ReduceMean", "Gemm", "MatMul", "Flatten", "Reshape", "Cast", "Div", "Sub"})


def _qdq_request(request: ExportRequest) -> ExportRequest:
    """The request of the route's internal ONNX: NCHW, the exporter's native opset (--opset is the
    ONNX artifact's; a conversion down to 17 fails for some graphs, e.g. Pad of a static-batch Lite0)."""
    import dataclasses

    from edgecls.export.onnx import DEFAULT_OPSET

    return dataclasses.replace(request, nhwc=False, opset=max(request.opset, DEFAULT_OPSET))


def qdq_unsuited(fp32_onnx_path: Path) -> str | None:
    """Why "auto" leaves this fp32 ONNX to NNCF (ops outside QDQ_SUITED_OPS), or None."""
    import onnx

    others = sorted({n.op_type for n in onnx.load(str(fp32_onnx_path), load_external_data=False).graph.node}
                    - QDQ_SUITED_OPS)
    return f"the graph has {', '.join(others)} (squeeze-excite / swish), where NNCF's int8 runs faster" if others else None


def uses_onnxruntime_qdq(request: ExportRequest, settings: "OpenVinoInt8Settings") -> bool:
    """Whether this request's int8 IR comes from onnxruntime's QDQ (else NNCF)."""
    if settings.quantizer_for(request) != "onnxruntime":
        return False
    if settings.quantizer == "onnxruntime":
        return True
    from edgecls.export.onnx import fp32_onnx

    return qdq_unsuited(fp32_onnx(_qdq_request(request))) is None


class _QdqNotSuited(Exception):
    """"auto" leaves this graph to NNCF (see QDQ_SUITED_OPS); the message says why."""


def _int8_from_onnx_qdq(ov: Any, request: ExportRequest, float_nodes: list[str] | None = None,
                        only_if_suited: bool = False) -> tuple[Any, ExportRequest, str, str]:
    """(int8 ov.Model, request, "int8", converter): onnxruntime's static QDQ quantization of the
    run's fp32 ONNX (the [onnx.int8] settings, plus ``float_nodes`` kept float), read by OpenVINO's
    ONNX frontend. The ONNX is NCHW whatever the artifact's layout: finish() adds the layout.
    ``only_if_suited``: raise _QdqNotSuited for graphs with ops outside QDQ_SUITED_OPS."""
    import dataclasses
    import json

    from edgecls.export.onnx import OnnxInt8Settings, fp32_onnx, quantize_int8, request_options

    _checked_calibration(request)
    onnx_settings = OnnxInt8Settings.from_options(request_options(request, "onnx").get("int8"))
    if float_nodes:
        onnx_settings = dataclasses.replace(onnx_settings, float_nodes=[*onnx_settings.float_nodes, *float_nodes])
    nchw = _qdq_request(request)
    workdir = Path(request.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    qdq = workdir / f"openvino_int8_qdq_{os.getpid()}.onnx"
    fp32 = fp32_onnx(nchw)
    unsuited = qdq_unsuited(fp32) if only_if_suited else None
    if unsuited:
        raise _QdqNotSuited(unsuited)
    try:
        used = quantize_int8(fp32, qdq, nchw, onnx_settings)
        with _telemetry_disabled():
            ov_model = ov.convert_model(str(qdq))
    finally:
        qdq.unlink(missing_ok=True)
    if len(ov_model.inputs) != 1 or len(ov_model.outputs) != 1:
        raise InvalidArgumentError(f"{request.info.name} has {len(ov_model.inputs)} inputs and {len(ov_model.outputs)} "
                                   "outputs after conversion; an image classifier needs one of each")
    ov_model.set_rt_info("onnxruntime", ["edgecls", "int8_quantizer"])
    ov_model.set_rt_info(json.dumps(used), ["edgecls", "int8_onnx_settings"])
    ov_model.set_rt_info(str(len(request.calibration)), ["edgecls", "int8_calibration_images"])
    ov_model.set_rt_info(",".join(used["float_nodes"]), ["edgecls", "int8_float_layers"])
    return ov_model, request, "int8", "torch.onnx + onnxruntime QDQ + OpenVINO ONNX frontend"


def _to_channels_last(ov: Any, ov_model: Any) -> Any:
    """Input becomes (N, H, W, C) with a Transpose in front; the network inside stays NCHW."""
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(ov_model)
    ppp.input().tensor().set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    return ppp.build()


# Artifact precision -> the inference precision its IR is compiled with; the rest run f32 (an fp16
# IR decompresses its weights at load, an int8 IR runs its int8 kernels and f32 elsewhere).
EXECUTION_PRECISIONS = {"bf16": "bf16"}


def _write_metadata(ov_model: Any, request: ExportRequest, precision: str, converter: str) -> None:
    import edgecls

    info = request.info
    values = {
        "model": info.name,
        "family": info.family,
        "resolution": request.resolution,
        "mean": ",".join(f"{v:g}" for v in info.mean),
        "std": ",".join(f"{v:g}" for v in info.std),
        "crop_pct": info.crop_pct,
        "interpolation": info.interpolation,
        "layout": "NHWC" if request.nhwc else "NCHW",
        "precision": precision,
        # what edgecls.runtime.openvino passes as INFERENCE_PRECISION_HINT (OpenVINO's type name)
        "execution_precision": EXECUTION_PRECISIONS.get(precision, "f32"),
        "input_type": request.input_type,
        "num_classes": ov_model.output(0).get_partial_shape()[-1].get_length(),
        "converter": converter,
        "edgecls_version": edgecls.__version__,
    }
    from edgecls.export.onnx import artifact_metadata

    # The labels the other formats embed (a checkpoint's class names, or ImageNet's), as JSON.
    labels = artifact_metadata(request, precision).get("labels")
    if labels:
        values["labels"] = labels
    for key, value in values.items():
        ov_model.set_rt_info(str(value), ["edgecls", key])


class OpenVinoExporter(Exporter):
    format = "openvino"

    @classmethod
    def check_settings(cls, options: dict[str, Any], precisions: list[str]) -> None:
        OpenVinoInt8Settings.from_options(options)

    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        if precision not in self.precisions:
            raise InvalidArgumentError(f"OpenVINO precision must be one of {', '.join(self.precisions)}, not '{precision}'")
        if precision == "int8":
            # Fail on bad settings or calibration before the slow conversion.
            settings = OpenVinoInt8Settings.from_request(request)
            _checked_calibration(request)
        ov = _import_openvino()
        fallback = None
        if precision == "int8" and settings.quantizer_for(request) == "onnxruntime":
            try:
                quantized = _int8_from_onnx_qdq(ov, request, only_if_suited=settings.quantizer == "auto")
            except (InvalidArgumentError, MissingDependencyError):
                raise
            except _QdqNotSuited as why:
                fallback = f"auto chose NNCF: {why}"
            except Exception as error:  # noqa: BLE001 - the ONNX capture or quantizer failed: NNCF is the second route
                if settings.quantizer != "auto":
                    raise
                fallback = "onnxruntime QDQ failed: " + (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            else:
                self.finish(ov, *quantized, dest)
                return
        ov_model, converter = _converted_fp32(ov, request)
        if len(ov_model.inputs) != 1 or len(ov_model.outputs) != 1:
            raise InvalidArgumentError(
                f"{request.info.name} has {len(ov_model.inputs)} inputs and {len(ov_model.outputs)} outputs "
                "after conversion; an image classifier needs one of each"
            )
        if precision == "int8":
            # Quantize the NCHW graph, before the layout change, so calibration arrays fit as they are.
            ov_model = _quantize(ov_model, request, 1 if request.dynamic_batch else int(request.batch), settings)
            converter = f"{converter} + NNCF"
            if fallback:
                ov_model.set_rt_info(fallback, ["edgecls", "int8_quantizer_fallback"])
        self.finish(ov, ov_model, request, precision, converter, dest)

    def finish(self, ov: Any, ov_model: Any, request: ExportRequest, precision: str, converter: str, dest: Path) -> None:
        """Layout, stable names, metadata and the save: every precision's last steps (also after an accuracy budget)."""
        if request.nhwc:
            ov_model = _to_channels_last(ov, ov_model)
        # Stable tensor names, whatever the capture called them (torch.export uses the argument name).
        ov_model.input(0).get_tensor().set_names({"input"})
        ov_model.output(0).get_tensor().set_names({"logits"})
        ov_model.set_friendly_name(request.info.name)
        _write_metadata(ov_model, request, precision, converter)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # save_model compresses weights to fp16 by default; only the fp16 artifact asks for it, so
        # fp32 (and bf16, rounded by the CPU plugin at compile time) stays exact and int8 differs
        # from fp32 by quantization alone (NNCF already stores the quantized weights as int8 constants).
        ov.save_model(ov_model, str(dest), compress_to_fp16=(precision == "fp16"))


EXPORTER = OpenVinoExporter
