"""ONNX Runtime runner (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecls.runtime.base import cast_input, import_runtime, InputSpec, load_error, Runner


class OnnxRuntimeRunner(Runner):
    runtime = "onnxruntime"
    package = "onnxruntime"

    @staticmethod
    def read_metadata(path: Path) -> dict[str, str]:
        """The model's metadata_props (written by edgecls.export.onnx)."""
        from edgecls.runtime.graph import onnx_metadata

        return onnx_metadata(path)

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        self._ort = ort = import_runtime("onnxruntime", "onnxruntime is not installed: pip install 'edgecls[runtime]'")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise load_error("onnxruntime", path, exc) from None
        inp = self.session.get_inputs()[0]
        self._input = inp
        self._output_name = self.session.get_outputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        layout = meta.get("layout") or ("NHWC" if len(shape) == 4 and shape[-1] == 3 and shape[1] != 3 else "NCHW")
        dtype = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
                 "tensor(int8)": "int8"}.get(inp.type, "float32")
        self._spec = InputSpec(inp.name, shape, dtype, layout)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def prepare(self, x: np.ndarray) -> Any:
        return {self._input.name: np.ascontiguousarray(cast_input(x, self._spec.dtype))}

    def infer(self, prepared: Any) -> Any:
        return self.session.run([self._output_name], prepared)[0]

    def to_float(self, raw: Any) -> np.ndarray:
        return np.asarray(raw, dtype=np.float32)

    def version(self) -> str:
        return self._ort.__version__


RUNNER = OnnxRuntimeRunner
