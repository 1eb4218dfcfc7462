"""ExecuTorch runner: a ``.pte`` program through ``executorch.runtime`` (XNNPACK delegate on CPU).

The pybindings take and return torch tensors, so this runtime needs torch (the executorch wheel
depends on it); the conversion from and to numpy is done in ``prepare`` / ``to_float``, outside
the timed ``infer``. Threads: XNNPACK's process-wide threadpool is reset to ``threads`` when given
(ExecuTorch has no per-program thread setting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecls.runtime.base import (cast_input, import_runtime, InputSpec, load_error, Runner, read_sidecar,
                                  sidecar_metadata)

# ExecuTorch ScalarType codes (the same numbering as c10::ScalarType)
_DTYPES = {6: "float32", 5: "float16", 0: "uint8", 1: "int8"}


class ExecuTorchRunner(Runner):
    runtime = "executorch"
    package = "executorch.runtime"
    read_metadata = staticmethod(sidecar_metadata)  # a .pte has no free-form metadata slot

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        # The pybindings take and return torch tensors.
        self._torch = import_runtime("torch", "the ExecuTorch runtime needs torch (its Python bindings take torch "
                                              "tensors): pip install 'edgecls[executorch]'")
        runtime = import_runtime("executorch.runtime",
                                 "the ExecuTorch runtime is not installed: pip install 'edgecls[executorch]'")
        if threads:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            _unsafe_reset_threadpool(int(threads))
        try:
            program = runtime.Runtime.get().load_program(Path(path))
            self._method = program.load_method("forward")
            meta = program.metadata("forward")
        except Exception as exc:  # noqa: BLE001 - the pybindings raise RuntimeError / ValueError
            raise load_error("ExecuTorch", path, exc) from None
        tensor = meta.input_tensor_meta(0)
        shape = tuple(int(d) for d in tensor.sizes())
        dtype = _DTYPES.get(int(tensor.dtype()), "float32")
        self._spec = InputSpec("input", shape, dtype, _layout(Path(path), shape))

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def prepare(self, x: np.ndarray) -> Any:
        return (self._torch.from_numpy(np.ascontiguousarray(cast_input(x, self._spec.dtype))),)

    def infer(self, prepared: Any) -> Any:
        return self._method.execute(prepared)[0]

    def to_float(self, raw: Any) -> np.ndarray:
        return raw.detach().float().numpy()

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("executorch")
        except PackageNotFoundError:
            return ""


def _layout(path: Path, shape: tuple[int, ...]) -> str:
    """From the sidecar metadata when present, else from the shape (image sides are never 3 pixels)."""
    layout = read_sidecar(path).get("layout")
    if layout in ("NCHW", "NHWC"):
        return layout
    return "NHWC" if len(shape) == 4 and shape[-1] == 3 and shape[1] != 3 else "NCHW"


RUNNER = ExecuTorchRunner
