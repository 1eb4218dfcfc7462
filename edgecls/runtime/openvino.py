"""OpenVINO runner (CPU plugin), tuned for single-image latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecls.runtime.base import cast_input, import_runtime, InputSpec, Runner
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


def _load_error(path: Path, exc: BaseException, what: str) -> EdgeclsError:
    """One line naming the real cause: OpenVINO puts the source location on the first line
    ("Exception from src/inference/src/cpp/core.cpp:84:") and the reason on the following ones."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from src") and not ln.startswith("Check '")]
    reason = (useful or lines or [type(exc).__name__])[0]
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
            # The CPU plugin picks its own execution precision: bf16 on CPUs with AVX512_BF16 or
            # AMX, f16 on ARM. An fp32 IR would then silently run in 16-bit, and both its parity
            # and its timing would describe a different model than the one exported. So the IR
            # says what it runs in (rt_info execution_precision: bf16 for a bf16 artifact, f32
            # for the rest, f32 for IRs from other tools): an fp16 IR is fp16-compressed
            # weights, decompressed at load; an int8 IR runs its int8 kernels.
            hints.inference_precision: ov.Type.bf16 if self.metadata.get("execution_precision") == "bf16" else ov.Type.f32,
        }
        if threads:
            config[props.inference_num_threads] = int(threads)
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise _load_error(self.path, exc, "compile for CPU") from None
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
