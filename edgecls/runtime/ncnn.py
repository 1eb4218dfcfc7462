"""NCNN runner: ``.param`` + ``.bin`` through the ``ncnn`` Python package (CPU, no Vulkan).

An ncnn ``Mat`` holds one image (C x H x W, no batch), so the input spec has batch 1 and
``run_artifact`` feeds images one at a time. The input shape, layout, precision and input type are
read from the sidecar ``<file>.json`` written at export (the ``.param`` records none of them).

fp32 artifacts run with ncnn's fp16 / bf16 storage and arithmetic switched off, so parity checks the
float graph itself; fp16 artifacts run with ncnn's defaults, as an app would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecls.errors import EdgeclsError
from edgecls.runtime.base import InputSpec, Runner, import_runtime, read_sidecar, sidecar_metadata


class NcnnRunner(Runner):
    runtime = "ncnn"
    package = "ncnn"
    read_metadata = staticmethod(sidecar_metadata)  # the .param has no metadata slot

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        self._ncnn = ncnn = import_runtime("ncnn", "the ncnn runtime is not installed: pip install 'edgecls[ncnn]'")
        path = Path(path)
        weights = path.with_suffix(".bin")
        meta = read_sidecar(path)
        if not weights.is_file():
            raise EdgeclsError(f"NCNN weights not found: {weights} (a .param needs its .bin beside it)")
        shape = meta.get("input_shape")
        if not (isinstance(shape, list) and len(shape) == 3):
            raise EdgeclsError(f"{path.name} has no sidecar {path.name}.json with its input shape: re-export it with edgecls")
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        if meta.get("precision") != "fp16":
            net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
            net.opt.use_bf16_storage = False
        if threads:
            net.opt.num_threads = int(threads)
        if net.load_param(str(path)) != 0 or net.load_model(str(weights)) != 0:
            raise EdgeclsError(f"ncnn cannot load {path} with {weights.name}: not an ncnn model, or a layer this ncnn lacks")
        self.net = net
        self._input_name = net.input_names()[0]
        self._output_name = net.output_names()[0]
        layout = meta.get("layout") or "NCHW"
        dtype = "uint8" if meta.get("input_dtype") == "uint8" else "float32"
        self._spec = InputSpec(self._input_name, (1, *map(int, shape)), dtype, layout)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def prepare(self, x: np.ndarray) -> Any:
        if len(x) != 1:
            raise EdgeclsError(f"{self.path.name} takes one image at a time, got a batch of {len(x)}")
        if self._spec.dtype == "uint8":  # byte values, held as float like ncnn::Mat::from_pixels does
            x = np.clip(np.round(x), 0, 255)
        # The Mat wraps the array's memory: keep the array alive beside it.
        array = np.ascontiguousarray(x[0], dtype=np.float32)
        return array, self._ncnn.Mat(array)

    def infer(self, prepared: Any) -> Any:
        extractor = self.net.create_extractor()
        extractor.input(self._input_name, prepared[1])
        status, out = extractor.extract(self._output_name)
        if status != 0:
            raise EdgeclsError(f"ncnn failed to run {self.path.name} (status {status})")
        return out

    def to_float(self, raw: Any) -> np.ndarray:
        return np.array(raw, dtype=np.float32).reshape(1, -1)

    def version(self) -> str:
        return getattr(self._ncnn, "__version__", "")


RUNNER = NcnnRunner
