"""MACs counted from an ONNX graph, for when only the file is at hand.

Counts what ``edgecls.profile`` counts on the torch side: convolutions, Gemm and MatMul (attention
matmuls included), each as output elements x reduction length; elementwise ops, pooling and
normalisation are left out, as in the papers. Quantized forms (QLinearConv, ConvInteger,
QLinearMatMul, MatMulInteger, and Q/DQ graphs, whose Conv/MatMul nodes are plain) count the same
MACs as their float originals, so int8 and fp32 artifacts of one model agree.

Needs only the ``onnx`` package (in the ``runtime`` extra), not torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from edgecls.errors import EdgeclsError, MissingDependencyError

# op type -> (index of the data input, index of the weight/second input)
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}


@dataclass
class GraphMacs:
    macs: int  # per inference of the whole batch given
    batch: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: list[str] = field(default_factory=list)  # nodes whose shapes stayed unknown

    @property
    def macs_per_image(self) -> int:
        return self.macs // max(self.batch, 1)

    @property
    def complete(self) -> bool:
        return not self.uncounted


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("counting MACs of an ONNX file needs onnx: pip install 'edgecls[runtime]'") from None
    return onnx


def load_onnx(path: Path):
    """The graph without external weight data (shapes are all we need)."""
    onnx = _import_onnx()
    path = Path(path)
    if not path.is_file():
        raise EdgeclsError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a corrupt file
        raise EdgeclsError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0][:160]}") from None


def onnx_metadata(path: Path) -> dict[str, str]:
    """The model's metadata_props (edgecls writes the model name, resolution and layout there)."""
    return {p.key: p.value for p in load_onnx(path).metadata_props}


def _static_shape(value_info) -> list[int] | None:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = []
    for d in tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(d.dim_value)
    return dims


def count_onnx_macs(source, batch: int = 1, resolution: int | None = None) -> GraphMacs:
    """MACs of one inference of ``source`` (a path or a loaded ModelProto).

    Dynamic input dimensions are pinned before shape inference: the first to ``batch``, the
    spatial ones to ``resolution`` (required only when the graph leaves them dynamic).
    """
    onnx = _import_onnx()
    model = load_onnx(source) if isinstance(source, (str, Path)) else source
    model = type(model).FromString(model.SerializeToString())  # pinning dims must not touch the caller's copy
    initializer_names = {init.name for init in model.graph.initializer}
    for graph_input in model.graph.input:
        if graph_input.name in initializer_names:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value"):
                continue
            if axis == 0:
                dim.dim_value = batch
            elif resolution is not None and dims[axis].dim_param and axis in (1, 2, 3):
                # Channels are static in every edgecls export; any other dynamic dim is spatial.
                dim.dim_value = resolution
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001
        raise EdgeclsError(f"ONNX shape inference failed: {str(exc).splitlines()[0][:160]}") from None

    graph = inferred.graph
    shapes: dict[str, list[int] | None] = {}
    for value_info in [*graph.input, *graph.value_info, *graph.output]:
        shapes[value_info.name] = _static_shape(value_info)
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)

    total = 0
    by_op: dict[str, int] = {}
    uncounted: list[str] = []
    for node in graph.node:
        if node.op_type not in _CONV_OPS and node.op_type not in _MATMUL_OPS:
            continue
        data_index, weight_index = (_CONV_OPS.get(node.op_type) or _MATMUL_OPS[node.op_type])
        a = shapes.get(node.input[data_index]) if len(node.input) > data_index else None
        b = shapes.get(node.input[weight_index]) if len(node.input) > weight_index else None
        y = shapes.get(node.output[0])
        if a is None or b is None or y is None:
            uncounted.append(node.name or node.op_type)
            continue
        if node.op_type == "ConvTranspose":
            # Every input pixel scatters into (C_out / groups) x kernel outputs.
            macs = math.prod(a) * math.prod(b[1:])
        elif node.op_type in _CONV_OPS:
            macs = math.prod(y) * math.prod(b[1:])
        elif node.op_type == "Gemm":
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            k = a[0] if trans_a else a[-1]
            macs = math.prod(y) * k
        else:
            macs = math.prod(y) * a[-1]
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
        total += macs
    return GraphMacs(total, batch, by_op, uncounted)


# ---------------------------------------------------------------------------------------------
# The same count for the other artifact formats, so `edgecls info` and runtime-only benchmarks
# of an .xml or .tflite file still report MACs. Each reads shapes through its runtime's own API.

_OPENVINO_CONV = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData"}


def count_openvino_macs(path: Path, batch: int = 1, resolution: int | None = None) -> GraphMacs:
    """MACs of an OpenVINO IR: Convolution/GroupConvolution (weights [G,] O, I, k...) and MatMul."""
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("reading an OpenVINO IR needs openvino: pip install 'edgecls[runtime]'") from None
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:  # noqa: BLE001
        raise EdgeclsError(f"openvino cannot read {path}: {str(exc).strip().splitlines()[0][:160]}") from None
    if model.is_dynamic():
        shapes = {}
        for port in model.inputs:
            dims = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
            if dims and dims[0] is None:
                dims[0] = batch
            dims = [resolution if (d is None and resolution) else d for d in dims]
            if None in dims:
                raise EdgeclsError(f"{path} has dynamic input sizes: give a resolution to count its MACs")
            shapes[port.any_name] = dims
        model.reshape(shapes)
    total, by_op, uncounted = 0, {}, []
    for node in model.get_ordered_ops():
        op = node.get_type_name()
        if op not in _OPENVINO_CONV and op != "MatMul":
            continue
        try:
            a = list(node.input(0).get_shape())
            b = list(node.input(1).get_shape())
            y = list(node.output(0).get_shape())
        except RuntimeError:  # dynamic shape left somewhere
            uncounted.append(node.get_friendly_name())
            continue
        if op in ("ConvolutionBackpropData", "GroupConvolutionBackpropData"):
            macs = math.prod(a) * math.prod(b[2:] if op == "GroupConvolutionBackpropData" else b[1:])
        elif op == "GroupConvolution":  # weights [groups, out/g, in/g, k...]
            macs = math.prod(y) * math.prod(b[2:])
        elif op == "Convolution":  # weights [out, in, k...]
            macs = math.prod(y) * math.prod(b[1:])
        else:
            transpose_a = node.get_attributes().get("transpose_a", False)
            k = a[-2] if (transpose_a and len(a) > 1) else a[-1]
            macs = math.prod(y) * k
        by_op[op] = by_op.get(op, 0) + macs
        total += macs
    return GraphMacs(total, batch, by_op, uncounted)


def count_tflite_macs(path: Path) -> GraphMacs:
    """MACs of a .tflite file: CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED, BATCH_MATMUL."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MissingDependencyError("reading a .tflite file needs ai-edge-litert: pip install 'edgecls[runtime]'") from None
    try:
        interpreter = Interpreter(model_path=str(path))
    except Exception as exc:  # noqa: BLE001
        raise EdgeclsError(f"LiteRT cannot read {path}: {str(exc).strip().splitlines()[0][:160]}") from None
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    total, by_op, uncounted = 0, {}, []
    batch = 1
    inputs = interpreter.get_input_details()
    if inputs and len(inputs[0]["shape"]):
        batch = int(inputs[0]["shape"][0]) or 1
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the one API that lists ops and tensors
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL"):
            continue
        ins = [i for i in op["inputs"] if i >= 0]
        outs = list(op["outputs"])
        try:
            y = shapes[outs[0]]
            if name == "CONV_2D":  # filter [out, kh, kw, in/groups]
                macs = math.prod(y) * math.prod(shapes[ins[1]][1:])
            elif name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, out]
                macs = math.prod(y) * math.prod(shapes[ins[1]][1:3])
            elif name == "TRANSPOSE_CONV":  # inputs: output_shape, filter [out, kh, kw, in], data
                macs = math.prod(shapes[ins[2]]) * math.prod(shapes[ins[1]][:3])
            elif name == "FULLY_CONNECTED":  # weights [out, in]
                macs = math.prod(y) * shapes[ins[1]][-1]
            else:
                a = shapes[ins[0]]
                macs = math.prod(y) * a[-1]
        except (KeyError, IndexError):
            uncounted.append(f"{name}#{op['index']}")
            continue
        if macs <= 0:  # a dynamic (-1) dimension
            uncounted.append(f"{name}#{op['index']}")
            continue
        by_op[name] = by_op.get(name, 0) + macs
        total += macs
    return GraphMacs(total, batch, by_op, uncounted)


def count_artifact_macs(path: Path, batch: int = 1, resolution: int | None = None) -> GraphMacs:
    """MACs of any artifact file, by its format."""
    from edgecls.formats import format_of

    fmt = format_of(path).name
    if fmt == "onnx":
        return count_onnx_macs(path, batch, resolution)
    if fmt == "openvino":
        return count_openvino_macs(path, batch, resolution)
    if fmt == "tflite":
        return count_tflite_macs(path)
    raise EdgeclsError(f"cannot count MACs of {path}: no graph counter for {fmt}")
