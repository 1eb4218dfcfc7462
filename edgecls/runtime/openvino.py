"""OpenVINO runner (CPU plugin), tuned for single-image latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecls.runtime.base import cast_input, cpu_flags, cpu_fp16_flags, import_runtime, InputSpec, Runner
from edgecls.errors import EdgeclsError

_NUMPY_DTYPES = {"f32": "float32", "f16": "float16", "u8": "uint8", "i8": "int8"}
# OpenVINO's inference precision type names -> edgecls's precision names
_EDGECLS_NAMES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}


def read_edgecls_metadata(model: Any) -> dict[str, str]:
    """The ``edgecls`` section of an ov.Model's rt_info (written by the exporter), as strings."""
    if not model.has_rt_info(["edgecls"]):
        return {}
    section = model.get_rt_info()["edgecls"]
    return {key: value.astype(str) for key, value in section.items()}


def read_ir_metadata(path: Path) -> dict[str, str]:
    """The ``edgecls`` section of an IR's <rt_info>, read as XML (no openvino import, no weights)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise EdgeclsError(f"{path} is not a readable OpenVINO IR: {str(exc).splitlines()[0][:160]}") from None
    section = root.find("rt_info/edgecls")
    if section is None:
        return {}
    return {child.tag: child.attrib["value"] for child in section if "value" in child.attrib}


def inference_precision(metadata: dict[str, str], fp16_flags: list[str]) -> str:
    """The INFERENCE_PRECISION_HINT (OpenVINO's type name) an IR is compiled with on this CPU.

    The CPU plugin's default is bf16 on CPUs with AVX512_BF16 / AMX and f16 on every ARM core: an
    fp32 IR would silently run in 16-bit there, and its parity and timing would describe another
    model than the one exported. So:
    - a bf16 artifact (rt_info execution_precision bf16): bf16;
    - an fp16 IR on a core with fp16 arithmetic (``fp16_flags``: Arm asimdhp): f16, the arithmetic the
      fp16 artifact is built for there. Measured under emulation (benchmarks/arm64_conformance.md,
      OpenVINO 2026.4.1, random weights, 64 px, 16 parity views): on Neoverse-N1 the fp16 IRs run in
      f16 keep the fp16 rule (min cosine >= 0.999): squeezenet1_1 0.999999, mobilenetv3_small_075
      0.99998, mobilevitv2_050 0.99997. On Cortex-A72 (no asimdhp) an f16 hint runs f32 anyway;
    - everything else f32: an fp32 IR as exported; an fp16 IR elsewhere decompresses its weights at
      load; an int8 IR runs its int8 kernels with f32 between them. An int8 IR must never get the
      ARM default f16: on Neoverse-N1 mobilenetv3_small_075's fails to compile ("128675 assigned
      value out of range for f16": an NNCF FakeQuantize constant beyond f16's 65504) and
      squeezenet1_1's drops from min cosine 0.99999 (f32) to 0.923;
    - IRs from other tools (no edgecls metadata): f32.
    """
    if metadata.get("execution_precision") == "bf16":
        return "bf16"
    if metadata.get("precision") == "fp16" and fp16_flags:
        return "f16"
    return "f32"


def int8_without_dotprod(error: str, metadata: dict[str, str], flags: list[str]) -> str:
    """What to add to a compile failure of an int8 IR on an Arm core without int8 dot products
    (``flags``: the core's asimd / asimddp Features), or "".

    Measured under emulation (benchmarks/arm64_conformance.md, OpenVINO 2026.4.1): on Cortex-A72
    (Armv8.0, no asimddp) the int8 IRs of squeezenet1_1 (onnxruntime QDQ) and mobilevitv2_050
    (NNCF) fail to compile with oneDNN's "object is not initialized" (an empty primitive: no int8
    kernel for one of their layers) under every precision hint, while mobilenetv3_small_075's
    compiles and the same IRs compile and pass on Neoverse-N1 (asimddp). ONNX Runtime and LiteRT
    run all three int8 models on both cores."""
    if "object is not initialized" not in error or metadata.get("precision") != "int8":
        return ""
    if "asimd" not in flags or "asimddp" in flags:  # not Arm, or a core with dot products
        return ""
    return (" (OpenVINO's ARM CPU plugin has no int8 kernel for a layer of this IR on a core without int8 dot "
            "products, asimddp; its fp32/fp16 IR, or the ONNX / TFLite int8 artifact, runs here)")


def _load_error(path: Path, exc: BaseException, what: str) -> EdgeclsError:
    """One line naming the real cause. OpenVINO chains its exceptions: each level adds a source
    location ("Exception from src/inference/src/cpp/core.cpp:117:") and a failing transformation
    adds its context ("[FakeQuantizeDecomposition] END: node: ... CALLBACK HAS THROWN: ..."), so
    the innermost cause is the last line that is neither, e.g. (an int8 IR under the ARM default
    f16, measured on an emulated Neoverse-N1) "128675 assigned value out of range for f16", or
    (oneDNN returning no int8 convolution, Cortex-A72) "object is not initialized"."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from src") and not ln.startswith("Check '")
              and "CALLBACK HAS THROWN" not in ln]
    reason = (useful or lines or [type(exc).__name__])[-1]
    return EdgeclsError(f"OpenVINO cannot {what} {path}: {reason[:240]}")


class OpenVinoRunner(Runner):
    runtime = "openvino"
    package = "openvino"
    read_metadata = staticmethod(read_ir_metadata)

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        self._ov = ov = import_runtime("openvino", "openvino is not installed: pip install 'edgecls[runtime]'")
        import openvino.properties as props
        import openvino.properties.hint as hints

        weights = self.path.with_suffix(".bin")
        if not weights.is_file():
            raise EdgeclsError(f"OpenVINO cannot read {self.path}: its weights file {weights.name} is missing "
                               "(an IR is the .xml and the .bin beside it)")
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:
            raise _load_error(self.path, exc, "read") from None
        if len(model.inputs) != 1:
            raise EdgeclsError(f"{self.path} has {len(model.inputs)} inputs; an image classifier has one")
        self.metadata = read_edgecls_metadata(model)

        config: dict[Any, Any] = {
            # One stream and the latency hint: the benchmark measures one image at a time, and
            # throughput mode would split the cores into parallel streams that each run slower.
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            props.num_streams: 1,
            # Chosen per artifact and per ISA (see inference_precision): the plugin's own default
            # would be bf16 on AVX512_BF16 / AMX CPUs and f16 on every ARM core.
            hints.inference_precision: getattr(ov.Type, inference_precision(self.metadata, cpu_fp16_flags())),
        }
        if threads:
            config[props.inference_num_threads] = int(threads)
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            error = _load_error(self.path, exc, "compile for CPU")
            raise EdgeclsError(f"{error}{int8_without_dotprod(str(error), self.metadata, cpu_flags(('asimd', 'asimddp')))}") from None
        self.request = self.compiled.create_infer_request()
        # What the plugin will really compute in: a bf16 hint on a CPU without bf16 falls back to f32.
        executed = self.compiled.get_property(hints.inference_precision).get_type_name()
        self.execution_precision = _EDGECLS_NAMES.get(executed, executed)
        if self.execution_precision == "bf16" and not self.compute_precisions().get("bf16"):
            self.execution_precision = "fp32"  # the hint took, but no convolution or matmul runs in bf16

        port = model.input(0)
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        dtype = _NUMPY_DTYPES.get(port.get_element_type().get_type_name(), "float32")
        self._spec = InputSpec(port.get_any_name() or "input", shape, dtype, self._layout_of(port, shape))

    def compute_precisions(self) -> dict[str, int]:
        """How many convolution / fully-connected / matmul layers of the compiled graph run in each
        precision (edgecls's names), from the runtime model's ``runtimePrecision``. The hint read
        back says what was asked for; this is what the kernels do (a random-weight MobileNetV2's
        logits are its classifier bias, so bf16 would be invisible in them)."""
        counts: dict[str, int] = {}
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "layerType" not in info or "runtimePrecision" not in info:
                continue
            if info["layerType"].astype(str) in ("Convolution", "FullyConnected", "MatMul", "Deconvolution"):
                name = info["runtimePrecision"].astype(str)
                counts[_EDGECLS_NAMES.get(name, name)] = counts.get(_EDGECLS_NAMES.get(name, name), 0) + 1
        return counts

    def _layout_of(self, port: Any, shape: tuple[int | None, ...]) -> str:
        # Most trusted first: the layout the exporter attached to the input, then its metadata,
        # then a guess from the shape for IRs written by other tools.
        layout = self._ov.layout_helpers.get_layout(port).to_string().replace(",", "").strip("[]")
        if layout in ("NCHW", "NHWC"):
            return layout
        if self.metadata.get("layout") in ("NCHW", "NHWC"):
            return self.metadata["layout"]
        return "NHWC" if len(shape) == 4 and shape[-1] == 3 and shape[1] != 3 else "NCHW"

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def prepare(self, x: np.ndarray) -> Any:
        """Bind ``x`` to the runner's one InferRequest; the returned request infers on the latest
        prepared input (a dynamic-batch IR takes any batch size here)."""
        # The tensor owns a copy of the input, so the timed infer() reads runtime memory only.
        array = np.ascontiguousarray(cast_input(x, self._spec.dtype))
        self.request.set_input_tensor(self._ov.Tensor(array, shared_memory=False))
        return self.request

    def infer(self, prepared: Any) -> Any:
        prepared.infer()
        return prepared.get_output_tensor(0)

    def to_float(self, raw: Any) -> np.ndarray:
        # Copy: the output tensor is runtime memory that the next inference overwrites.
        return np.array(raw.data, dtype=np.float32, copy=True)

    def version(self) -> str:
        return self._ov.get_version()


RUNNER = OpenVinoRunner
