"""LiteRT (TensorFlow Lite) runner: ai-edge-litert's Interpreter, or tflite_runtime / tensorflow.lite.

The interpreter is CPU with its default XNNPACK delegate, the way an app would run the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecls.runtime.base import InputSpec, Runner, cast_input, load_error
from edgecls.errors import EdgeclsError, InvalidArgumentError, MissingDependencyError

_INTEGER_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def _interpreter_class() -> tuple[Any, str]:
    """The Interpreter class of the first installed LiteRT package, and that package's version."""
    try:
        from ai_edge_litert import interpreter as litert_interpreter

        return litert_interpreter.Interpreter, _package_version("ai-edge-litert")
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, _package_version("tflite-runtime")
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, tf.__version__
    except ImportError:
        pass
    raise MissingDependencyError("no LiteRT interpreter is installed: pip install 'edgecls[runtime]' (ai-edge-litert)")


def _package_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


def _quantization(details: dict) -> tuple[float, int]:
    scale, zero_point = details.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


# TFLite artifacts carry edgecls' metadata (the same keys and string values as the ONNX
# metadata_props) as one JSON object in a buffer named by a Model.metadata entry, the flatbuffer's
# own place for key/value data; interpreters ignore entries they do not know.
METADATA_NAME = "edgecls"


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise MissingDependencyError("reading .tflite metadata needs ai-edge-litert: pip install 'edgecls[runtime]'") from None
    return schema


def read_tflite_metadata(path: Path) -> dict[str, str]:
    """The edgecls metadata of a .tflite file (empty when it has none)."""
    import json

    schema = _schema()
    content = Path(path).read_bytes()
    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == METADATA_NAME.encode():
                buffer = model.Buffers(entry.Buffer())
                if buffer.Offset() > 1:  # data stored after the flatbuffer (models above 2 GB)
                    raw = content[buffer.Offset():buffer.Offset() + buffer.Size()]
                else:
                    raw = buffer.DataAsNumpy().tobytes()
                data = json.loads(raw.decode())
                return {str(k): str(v) for k, v in data.items()}
    except Exception as exc:  # noqa: BLE001 - a damaged flatbuffer raises many types
        raise EdgeclsError(f"{path} is not a readable TFLite model: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}") from None
    return {}


def add_tflite_metadata(content: bytes, values: dict[str, str]) -> bytes:
    """``content`` with ``values`` stored as the edgecls metadata (replacing an older one)."""
    import json

    import flatbuffers
    import numpy as np

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    for old in model.buffers or []:
        # ai-edge-quantizer stores constants after the flatbuffer (offset from the file start);
        # a repacked flatbuffer has another length, so those move inline (fine below 2 GB).
        if old.offset and old.offset > 1:
            old.data = np.frombuffer(content[old.offset:old.offset + old.size], dtype=np.uint8)
            old.offset, old.size = 0, 0
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(values, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class LiteRTRunner(Runner):
    runtime = "litert"
    package = "ai_edge_litert"
    read_metadata = staticmethod(read_tflite_metadata)

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        interpreter_class, self._version = _interpreter_class()
        try:
            # None lets the runtime pick its default thread count.
            self.interpreter = interpreter_class(model_path=str(path), num_threads=threads or None)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise load_error("LiteRT", path, exc) from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        signature = self._input.get("shape_signature")
        if signature is None or len(signature) == 0:
            signature = self._input["shape"]
        shape = tuple(int(d) if d >= 0 else None for d in signature)
        # A 3-channel image model is NHWC exactly when channels come last; sides are never 3 pixels.
        layout = "NHWC" if len(shape) == 4 and shape[-1] == 3 and shape[1] != 3 else "NCHW"
        dtype = np.dtype(self._input["dtype"]).name
        self._spec = InputSpec(self._input["name"], shape, dtype, layout)
        self._loaded: Any = None  # the prepared array currently in the interpreter's input buffer

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def _fit_input_shape(self, shape: tuple[int, ...]) -> None:
        current = tuple(int(d) for d in self._input["shape"])
        if shape == current:
            return
        expected = self._spec.shape
        fits = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
        if not fits:
            shown = tuple("?" if d is None else d for d in expected)
            raise InvalidArgumentError(f"{self.path.name} takes input of shape {shown}, got {shape}")
        self.interpreter.resize_tensor_input(self._input["index"], list(shape))
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._loaded = None

    def prepare(self, x: np.ndarray) -> Any:
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._fit_input_shape(tuple(x.shape))
        dtype = self._spec.dtype
        if dtype == "uint8" and _quantization(self._input)[0] == 0.0:
            x = cast_input(x, dtype)  # a byte input (--input-type uint8): the graph casts it to float itself
        elif dtype in _INTEGER_RANGES:
            scale, zero_point = _quantization(self._input)
            if scale == 0.0:
                raise EdgeclsError(f"{self.path.name} has an integer input without quantization parameters")
            low, high = _INTEGER_RANGES[dtype]
            x = np.clip(np.round(x / scale) + zero_point, low, high).astype(dtype)
        elif dtype != "float32":
            x = x.astype(dtype)
        prepared = np.ascontiguousarray(x)
        self.interpreter.set_tensor(self._input["index"], prepared)
        self._loaded = prepared
        return prepared

    def infer(self, prepared: Any) -> Any:
        # The input buffer already holds ``prepared`` unless another input was prepared since.
        if prepared is not self._loaded:
            self.interpreter.set_tensor(self._input["index"], prepared)
            self._loaded = prepared
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def to_float(self, raw: Any) -> np.ndarray:
        raw = np.asarray(raw)
        if raw.dtype.kind in "iu":
            scale, zero_point = _quantization(self._output)
            if scale == 0.0:
                raise EdgeclsError(f"{self.path.name} has an integer output without quantization parameters")
            return ((raw.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return raw.astype(np.float32)

    def version(self) -> str:
        return self._version


RUNNER = LiteRTRunner
