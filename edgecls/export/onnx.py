"""ONNX artifacts: fp32 (torch.onnx + onnxslim), fp16 (onnx_fp16.py), int8 (ORT static QDQ).

All three start from one fp32 graph exported once per run into the workdir (``fp32_onnx``), so
fp16/int8 cost no second PyTorch trace, and the other formats may start from it as well.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.errors import InvalidArgumentError, MissingDependencyError
from edgecls.export.app_input import as_input, input_dtype
from edgecls.export.base import ExportRequest, Exporter

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MIN_OPSET = 17  # LayerNormalization (MobileViT, Mobile-Former) is a single op from opset 17 on
DEFAULT_OPSET = 18  # the dynamo exporter's native opset: no version conversion step

# What "auto" quantizes in TRANSFORMER_FAMILIES: the ops with integer kernels. ORT's default
# (every op it knows) also puts QDQ around LayerNormalization (per-channel on a rank-1 weight),
# Softmax, Mul and Add, which costs accuracy and buys no speed (those run in float between a
# DequantizeLinear and a QuantizeLinear). Measured, random weights, 64 px, 16 calibration / 24
# parity views, u8/s8 reduce_range: mobileformer_96m min cosine 0.975 -> 0.9995 (top-1 25 % -> 100 %),
# mobilevitv2_050 0.9960 -> 0.9978. CNNs keep ORT's default (residual Adds stay integer).
ATTENTION_OP_TYPES = ["Conv", "Gemm", "MatMul"]


@dataclass
class OnnxInt8Settings:
    """Static quantization settings (the ``[onnx.int8]`` table of a target profile).

    The default (u8 activations, s8 weights, reduce_range) is what x86-avx2.toml measured best on
    an AVX2 machine without VNNI; see that file for the figures.
    """

    activation_type: str = "uint8"
    weight_type: str = "int8"
    reduce_range: bool = True
    per_channel: bool = True
    calibrate_method: str = "minmax"  # or "entropy", "percentile"
    percentile: float = 99.999  # the percentile method's range (onnxruntime's CalibPercentile)
    # Nodes left in float: ONNX node names, or "first" / "last" for the first / last Conv, Gemm or
    # MatMul of the graph (the stem and the classifier, which see the rawest inputs and decide the
    # logits). The accuracy budget (edgecls.export.accuracy) adds the most sensitive nodes here.
    float_nodes: list[str] = field(default_factory=list)
    # "auto": ATTENTION_OP_TYPES for TRANSFORMER_FAMILIES, ORT's default for CNNs; "all": ORT's
    # default everywhere; or a list of ONNX op types to quantize.
    op_types: str | list[str] = "auto"
    # Fold the mean output shift of each layer's weight rounding back into its bias
    # (edgecls.export.bias_correction, where the measurements are).
    bias_correction: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> "OnnxInt8Settings":
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown [onnx.int8] setting(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
        settings = cls(**options)
        for name in ("activation_type", "weight_type"):
            if getattr(settings, name) not in ("uint8", "int8"):
                raise InvalidArgumentError(f"[onnx.int8] {name} must be 'uint8' or 'int8', not {getattr(settings, name)!r}")
        op_types = settings.op_types
        if not (op_types in ("auto", "all") or (isinstance(op_types, list) and op_types
                                                and all(isinstance(t, str) for t in op_types))):
            raise InvalidArgumentError(f"[onnx.int8] op_types must be 'auto', 'all' or a list of ONNX op types, not {op_types!r}")
        if not isinstance(settings.float_nodes, list) or not all(isinstance(n, str) for n in settings.float_nodes):
            raise InvalidArgumentError(f"[onnx.int8] float_nodes must be a list of node names or 'first' / 'last', "
                                       f"not {settings.float_nodes!r}")
        if not isinstance(settings.bias_correction, bool):
            raise InvalidArgumentError(f"[onnx.int8] bias_correction must be true or false, not {settings.bias_correction!r}")
        if not 50.0 < float(settings.percentile) <= 100.0:
            raise InvalidArgumentError(f"[onnx.int8] percentile must be in (50, 100], not {settings.percentile!r}")
        if settings.calibrate_method not in ("minmax", "entropy", "percentile"):
            raise InvalidArgumentError(
                f"[onnx.int8] calibrate_method must be minmax, entropy or percentile, not {settings.calibrate_method!r}")
        return settings


def request_options(request: ExportRequest, fmt: str) -> dict[str, Any]:
    """Per-format settings from the target profile, e.g. ``{"int8": {...}, "exporter": "dynamo"}``."""
    return dict(request.options.get(fmt, {}))


def _check_onnx_stack() -> None:
    for module, what in (("onnx", "onnx"), ("onnxslim", "onnxslim"), ("onnxruntime", "onnxruntime")):
        try:
            __import__(module)
        except ImportError:
            raise MissingDependencyError(f"ONNX export needs {what}: pip install 'edgecls[export]'") from None


def channels_last_input(model):
    """``model`` behind a transpose, so the artifact takes (N, H, W, C) input like camera frames."""
    import torch

    class ChannelsLastInput(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.permute(0, 3, 1, 2))

    return ChannelsLastInput(model).eval()


def example_input(request: ExportRequest):
    import torch

    batch = max(2, request.batch) if request.dynamic_batch else request.batch  # batch 1 would be specialised
    shape = (batch, request.resolution, request.resolution, 3) if request.nhwc else (batch, 3, request.resolution, request.resolution)
    if input_dtype(request, "onnx") == "uint8":  # traced with bytes: the graph's input is uint8, a Cast its first node
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def artifact_metadata(request: ExportRequest, precision: str) -> dict[str, str]:
    """Everything a consumer needs to feed the artifact, stored in the ONNX file itself."""
    import edgecls

    info = request.info
    props = {
        "name": info.name,
        "resolution": str(request.resolution),
        "mean": json.dumps(list(info.mean)),
        "std": json.dumps(list(info.std)),
        "crop_pct": str(info.crop_pct),
        "interpolation": info.interpolation,
        "layout": "NHWC" if request.nhwc else "NCHW",
        "precision": precision,
        "input_type": request.input_type,
        "edgecls_version": edgecls.__version__,
    }
    num_classes = _num_classes(request)
    props["num_classes"] = str(num_classes)
    classes = getattr(request, "classes", None)
    if classes and len(classes) == num_classes:  # a fine-tuned head's own class names
        props["labels"] = json.dumps([str(c) for c in classes])
    elif num_classes == 1000:
        try:
            from edgecls.labels import imagenet_labels

            props["labels"] = json.dumps(list(imagenet_labels()))
        except MissingDependencyError:
            pass  # labels are a convenience; the artifact is complete without them
    return props


def _num_classes(request: ExportRequest) -> int:
    import torch

    with torch.no_grad():  # the output width is the truth, whatever the classifier module is called
        x = torch.zeros(1, 3, request.resolution, request.resolution)
        return int(request.model(x).reshape(1, -1).shape[1])


def _set_metadata(model, props: dict[str, str]) -> None:
    import onnx

    # The exporter leaves torch-internal props on the model; the artifact carries edgecls' only.
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    model.producer_name = "edgecls"


def _torch_export(request: ExportRequest, exporter: str):
    """The raw ModelProto of torch.onnx; ``exporter`` is "dynamo" or "torchscript"."""
    import io

    import onnx
    import torch

    model = channels_last_input(request.model) if request.nhwc else request.model
    x = example_input(request)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            # torch.export-based: the supported exporter since torch 2.9; opsets below 18 go through
            # onnx's version converter.
            dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},) if request.dynamic_batch else None
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=request.opset, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], dynamic_shapes=dynamic, verbose=False,
                                        optimize=True, external_data=False)
            return program.model_proto
        if exporter == "torchscript":
            buffer = io.BytesIO()
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if request.dynamic_batch else None
            torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=request.opset, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes=axes, do_constant_folding=True)
            return onnx.load_from_string(buffer.getvalue())
    raise InvalidArgumentError(f"[onnx] exporter must be 'dynamo' or 'torchscript', not {exporter!r}")


def export_fp32_model(request: ExportRequest):
    """The simplified fp32 ModelProto, with edgecls metadata; raises when the graph is invalid."""
    import onnx
    import onnxslim

    _check_onnx_stack()
    if request.opset < MIN_OPSET:
        raise InvalidArgumentError(f"--opset {request.opset} is too old: use {MIN_OPSET} or newer")
    exporter = request_options(request, "onnx").get("exporter", "dynamo")
    try:
        model = _torch_export(request, exporter)
    except InvalidArgumentError:
        raise
    except Exception as exc:
        if exporter != "dynamo":
            raise
        # Some graphs (data-dependent shapes) defeat torch.export; the TorchScript tracer sees them
        # as one concrete path, which is what an inference artifact needs anyway.
        logging.getLogger("edgecls.export").warning("dynamo ONNX export failed (%s); retrying with TorchScript",
                                                    str(exc).splitlines()[0][:200])
        exporter = "torchscript"
        model = _torch_export(request, exporter)
    # onnxslim folds the exporter's leftovers (shape arithmetic on static shapes, Identity/Cast
    # chains, Conv+BN not yet fused by the TorchScript path) into a plain graph: a smaller file,
    # cleaner Conv->Relu patterns for the int8 quantizer to fuse, and fewer odd ops for the
    # converters that start from this graph. onnxslim rather than onnxsim: it is pure Python (onnxsim
    # is a native extension that must compile where no wheel matches, e.g. new Pythons or ARM boards),
    # so the same simplifier runs everywhere edgecls exports.
    model = onnxslim.slim(model)
    _set_metadata(model, artifact_metadata(request, "fp32"))
    model.doc_string = f"exported by torch.onnx ({exporter})"
    onnx.checker.check_model(model, full_check=True)
    return model


def fp32_onnx(request: ExportRequest) -> Path:
    """Path of the run's fp32 ONNX for ``request`` (exported on first use, reused afterwards)."""
    import onnx

    tag = f"{request.info.name}_{request.resolution}_{'dyn' if request.dynamic_batch else f'b{request.batch}'}" \
          f"_{'nhwc' if request.nhwc else 'nchw'}_op{request.opset}"
    path = Path(request.workdir) / f"shared_fp32_{tag}.onnx"
    if not path.is_file():
        model = export_fp32_model(request)
        partial = path.with_suffix(".partial")
        onnx.save(model, str(partial))
        partial.replace(path)
    return path


class _ArrayReader:
    """Feeds calibration arrays to ORT's calibrator in the artifact's batch and layout."""

    def __init__(self, calibration: np.ndarray, batch: int, nhwc: bool) -> None:
        calibration = np.asarray(calibration)
        data = np.ascontiguousarray(calibration.transpose(0, 2, 3, 1) if nhwc else calibration,
                                    dtype=np.uint8 if calibration.dtype == np.uint8 else np.float32)
        usable = len(data) - len(data) % batch if len(data) >= batch else 0
        if usable == 0:
            data = np.repeat(data, -(-batch // len(data)), axis=0)[:batch]
            usable = batch
        self._batches = [data[i:i + batch] for i in range(0, usable, batch)]
        self._index = 0

    def get_next(self):
        if self._index >= len(self._batches):
            return None
        self._index += 1
        return {INPUT_NAME: self._batches[self._index - 1]}

    def rewind(self) -> None:
        self._index = 0


QUANTIZABLE_COMPUTE = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def compute_nodes(model) -> list[str]:
    """Names of the Conv / Gemm / MatMul nodes of ``model`` in graph order: the candidates to keep float."""
    return [node.name for node in model.graph.node if node.op_type in QUANTIZABLE_COMPUTE]


def resolve_float_nodes(model, names: list[str]) -> list[str]:
    """``names`` with "first" / "last" replaced by the first / last compute node; unknown names are an error."""
    from edgecls.export.base import resolve_kept_float

    return resolve_kept_float(names, compute_nodes(model), {node.name for node in model.graph.node},
                              "[onnx.int8] float_nodes", "node")


def prepared_fp32(fp32_path: Path, request: ExportRequest) -> Path:
    """The fp32 graph the quantizer starts from (made once per run and reused by every int8 attempt)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = Path(request.workdir) / f"{fp32_path.stem}.pre.onnx"
    if not prepared.is_file():
        # Symbolic shape inference + ORT's basic graph optimizations first: the quantizer needs
        # every tensor's shape and works best on a graph where Conv+BN and friends are already one op.
        partial = prepared.with_suffix(".partial")
        quant_pre_process(str(fp32_path), str(partial), skip_symbolic_shape=False)
        partial.replace(prepared)
    return prepared


def quantize_int8(fp32_path: Path, dest: Path, request: ExportRequest, settings: OnnxInt8Settings) -> dict:
    """Static QDQ int8 of the fp32 ONNX at ``fp32_path`` into ``dest``; returns the settings used."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    if request.calibration is None or len(request.calibration) == 0:
        raise InvalidArgumentError("int8 export needs calibration images: pass --calib DIR or --calib builtin")
    workdir = Path(request.workdir)
    prepared = prepared_fp32(fp32_path, request)

    reader_cls = type("ArrayReader", (_ArrayReader, CalibrationDataReader), {})
    batch = 1 if request.dynamic_batch else request.batch
    reader = reader_cls(as_input(request.calibration, request, "onnx"), batch, request.nhwc)
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.calibrate_method]
    partial = workdir / f"{dest.stem}.quant.onnx"
    float_nodes = resolve_float_nodes(onnx.load(str(prepared), load_external_data=False), settings.float_nodes)
    op_types = settings.op_types
    if op_types == "auto":
        op_types = ATTENTION_OP_TYPES if request.is_attention_model else None
    elif op_types == "all":
        op_types = None
    quantize_static(
        str(prepared), str(partial), reader,
        quant_format=QuantFormat.QDQ,
        per_channel=settings.per_channel,
        reduce_range=settings.reduce_range,
        activation_type=qtype[settings.activation_type],
        weight_type=qtype[settings.weight_type],
        calibrate_method=method,
        calibration_providers=["CPUExecutionProvider"],
        op_types_to_quantize=op_types,
        nodes_to_exclude=float_nodes,
        extra_options={"CalibPercentile": float(settings.percentile)} if settings.calibrate_method == "percentile" else None,
    )
    used = {**vars(settings), "op_types": op_types or "all", "float_nodes": float_nodes}
    if settings.bias_correction:
        from edgecls.export.bias_correction import correct_biases

        reader.rewind()
        used["bias_correction"] = correct_biases(partial, prepared, iter(reader.get_next, None), partial)
    model = onnx.load(str(partial))
    props = artifact_metadata(request, "int8")
    props["quantization"] = json.dumps(used)
    _set_metadata(model, props)
    onnx.save(model, str(dest))
    partial.unlink(missing_ok=True)
    return used


class OnnxExporter(Exporter):
    format = "onnx"

    @classmethod
    def check_settings(cls, options: dict[str, Any], precisions: list[str]) -> None:
        unknown = sorted(set(options) - {"int8", "exporter"})
        if unknown:
            raise InvalidArgumentError(f"unknown [onnx] setting(s) {', '.join(unknown)}: use exporter or the [onnx.int8] table")
        if options.get("exporter", "dynamo") not in ("dynamo", "torchscript"):
            raise InvalidArgumentError(f"[onnx] exporter must be 'dynamo' or 'torchscript', not {options['exporter']!r}")
        OnnxInt8Settings.from_options(options.get("int8"))

    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        import onnx

        dest = Path(dest)
        fp32 = fp32_onnx(request)
        if precision == "fp32":
            shutil.copyfile(fp32, dest)
        elif precision == "fp16":
            from edgecls.export.onnx_fp16 import convert_to_fp16

            model = convert_to_fp16(onnx.load(str(fp32)))
            props = {p.key: p.value for p in model.metadata_props}
            props["precision"] = "fp16"
            _set_metadata(model, props)
            onnx.save(model, str(dest))
        elif precision == "int8":
            settings = OnnxInt8Settings.from_options(request_options(request, "onnx").get("int8"))
            quantize_int8(fp32, dest, request, settings)
        else:
            raise InvalidArgumentError(f"ONNX has no precision {precision!r}: use fp32, fp16 or int8")


EXPORTER = OnnxExporter
