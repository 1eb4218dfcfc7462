"""Core ML runner: an ``.mlpackage`` through coremltools' ``MLModel.predict``, on macOS only.

Core ML's runtime is part of macOS; coremltools on Linux can convert and read a model but not run
it, so opening one elsewhere fails with one line saying so (the export pipeline records such
artifacts as converted, not verified, instead of opening them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.runtime.base import InputSpec, Runner, import_runtime, load_error

_MISSING = "coremltools is not installed: pip install 'edgecls[coreml]'"
_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32"}


class CoreMLRunner(Runner):
    runtime = "coreml"
    package = "coremltools"

    @staticmethod
    def read_metadata(path: Path) -> dict[str, str]:
        """The package's user-defined metadata (read without loading the model: works off macOS)."""
        ct = import_runtime("coremltools", _MISSING)
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        return dict(spec.description.metadata.userDefined)

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        if sys.platform != "darwin":
            raise EdgeclsError(f"Core ML runs only on macOS: {Path(path).name} can be converted here but not run")
        self._ct = ct = import_runtime("coremltools", _MISSING)
        try:
            # CPU only: parity compares arithmetic, and bench times the CPU like every other runtime.
            self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        except Exception as exc:  # noqa: BLE001 - coremltools raises RuntimeError / ValueError
            raise load_error("Core ML", path, exc) from None
        description = self.model.get_spec().description
        inp = description.input[0]
        meta = dict(description.metadata.userDefined)
        self._image = inp.type.WhichOneof("Type") == "imageType"  # --input-type uint8: an RGB image
        if self._image:
            image = inp.type.imageType
            side_h, side_w = int(image.height), int(image.width)
            shape = (1, side_h, side_w, 3) if meta.get("layout") == "NHWC" else (1, 3, side_h, side_w)
            dtype_name = "UINT8"
        else:
            array = inp.type.multiArrayType
            shape = tuple(int(d) for d in array.shape)
            dtype_name = type(array).ArrayDataType.Name(array.dataType)
        layout = meta.get("layout") or ("NHWC" if len(shape) == 4 and shape[-1] == 3 and shape[1] != 3 else "NCHW")
        dtype = "uint8" if meta.get("input_type") == "uint8" or self._image else _DTYPES.get(dtype_name, "float32")
        self._spec = InputSpec(inp.name, shape, dtype, layout)
        self._output_name = description.output[0].name

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def prepare(self, x: np.ndarray) -> Any:
        if self._image:  # one RGB image per call (not verified off macOS: nothing runs Core ML there)
            from PIL import Image

            pixels = np.clip(np.round(np.asarray(x)), 0, 255).astype(np.uint8)
            if pixels.shape[0] != 1:
                raise EdgeclsError(f"{self.path.name} takes one image per call, got a batch of {pixels.shape[0]}")
            hwc = pixels[0] if self._spec.layout == "NHWC" else pixels[0].transpose(1, 2, 0)
            return {self._spec.name: Image.fromarray(np.ascontiguousarray(hwc), mode="RGB")}
        if self._spec.dtype == "uint8":  # byte values; the Core ML input tensor itself is float
            x = np.clip(np.round(x), 0, 255)
        return {self._spec.name: np.ascontiguousarray(x, dtype=np.float32)}

    def infer(self, prepared: Any) -> Any:
        return self.model.predict(prepared)[self._output_name]

    def to_float(self, raw: Any) -> np.ndarray:
        return np.asarray(raw, dtype=np.float32)

    def version(self) -> str:
        return self._ct.__version__


RUNNER = CoreMLRunner
