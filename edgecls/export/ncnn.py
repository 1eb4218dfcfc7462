"""NCNN export through pnnx: ``.param`` (graph, text) + ``.bin`` (weights), fp32 and fp16.

The model is traced with ``torch.jit.trace`` (what pnnx reads) into the run's workdir and the pnnx
binary from the ``pnnx`` wheel converts it. The binary is called directly rather than through
``pnnx.convert``: that wrapper drops the converter's exit code and output, so a failed conversion
would look like a success with a stale or missing file.

- fp32: ``fp16=0``, weights stored as float32.
- fp16: pnnx's default, weights stored as float16 (half the ``.bin``); ncnn computes in fp32 or fp16
  depending on the CPU (fp16 arithmetic on ARMv8.2+, fp32 on x86).
- int8: not offered. ncnn's post-training quantization is its ``ncnn2table`` + ``ncnn2int8`` tools,
  which neither the ``ncnn`` nor the ``pnnx`` wheel ships and Debian bookworm does not package.

NCNN has no batch dimension (a ``Mat`` is C x H x W), so the artifact takes one image: ``--batch``
above 1 and ``--dynamic-batch`` are refused. The ``.param`` has no metadata slot and does not
record the input shape, so the labels, preprocessing, input shape and edgecls version go into a
sidecar ``<file>.json`` (a side file, like the ``.bin``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from edgecls.errors import EdgeclsError, InvalidArgumentError, MissingDependencyError
from edgecls.export.base import Exporter, ExportRequest

INSTALL_HINT = "pip install 'edgecls[ncnn]'"
CONVERT_TIMEOUT_SECONDS = 1200


def _pnnx_binary() -> str:
    try:
        import pnnx
    except ImportError:
        raise MissingDependencyError(f"NCNN export needs pnnx: {INSTALL_HINT}") from None
    if not Path(pnnx.EXEC_PATH).is_file():
        raise MissingDependencyError(f"the pnnx wheel has no converter binary at {pnnx.EXEC_PATH}: reinstall it ({INSTALL_HINT})")
    return pnnx.EXEC_PATH


class NcnnExporter(Exporter):
    format = "ncnn"

    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        binary = _pnnx_binary()
        if precision not in self.precisions:
            raise InvalidArgumentError(
                f"NCNN has no precision '{precision}' here: use one of {', '.join(self.precisions)} "
                "(ncnn's int8 tools come from no installable package)"
            )
        if request.dynamic_batch or int(request.batch) != 1:
            raise InvalidArgumentError("NCNN artifacts take one image (no batch dimension): export ncnn with --batch 1")
        import torch

        from edgecls.export.executorch import write_sidecar
        from edgecls.export.onnx import channels_last_input

        dest = Path(dest)
        module = channels_last_input(request.model) if request.nhwc else request.model
        shape = _input_shape(request)
        scratch = Path(request.workdir) / f"pnnx-{dest.stem}"
        scratch.mkdir(parents=True, exist_ok=True)
        traced_path = scratch / "model.pt"
        with torch.no_grad():
            torch.jit.trace(module, torch.zeros(shape)).save(str(traced_path))
        # pnnx writes its own intermediate files too; they go to the scratch folder, not next to dest.
        command = [binary, str(traced_path), f"inputshape=[{','.join(map(str, shape))}]f32",
                   "device=cpu", f"ncnnparam={dest}", f"ncnnbin={dest.with_suffix('.bin')}",
                   f"pnnxparam={scratch / 'pnnx.param'}", f"pnnxbin={scratch / 'pnnx.bin'}",
                   f"pnnxpy={scratch / 'pnnx.py'}", f"pnnxonnx={scratch / 'pnnx.onnx'}",
                   f"ncnnpy={scratch / 'ncnn.py'}", f"fp16={1 if precision == 'fp16' else 0}"]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, cwd=scratch,
                                  timeout=CONVERT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise EdgeclsError(f"pnnx did not finish converting {request.info.name} in {CONVERT_TIMEOUT_SECONDS} s") from None
        if proc.returncode != 0 or not dest.is_file() or not dest.with_suffix(".bin").is_file():
            tail = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()][-2:]
            raise EdgeclsError(f"pnnx cannot convert {request.info.name} (exit {proc.returncode}): {' | '.join(tail)[:300]}")
        unsupported = _unsupported_layers(dest)
        if unsupported:  # pnnx keeps ops ncnn lacks as pnnx.* / aten layers the runtime cannot create
            raise EdgeclsError(f"pnnx left layers ncnn cannot run in {request.info.name}: {', '.join(unsupported)}")
        write_sidecar(request, precision, dest, extra={"input_shape": list(shape[1:]),
                                                      "input_dtype": _numpy_dtype(request)})


def _input_shape(request: ExportRequest) -> tuple[int, ...]:
    side = int(request.resolution)
    return (1, side, side, 3) if request.nhwc else (1, 3, side, side)


def _numpy_dtype(request: ExportRequest) -> str:
    """What an app feeds: raw RGB byte values for a uint8-input model (ncnn itself holds them as
    float in its Mat, as ``ncnn::Mat::from_pixels`` makes them), else normalized float32."""
    return "uint8" if getattr(request, "input_type", "float32") == "uint8" else "float32"


def _unsupported_layers(param: Path) -> list[str]:
    """Layer types in a ``.param`` that are pnnx / torch ops, not ncnn layers."""
    lines = param.read_text().splitlines()[2:]
    kinds = {line.split()[0] for line in lines if line.split()}
    return sorted(k for k in kinds if k.startswith(("pnnx.", "aten::", "torch.", "F.", "nn.", "Tensor.")))


EXPORTER = NcnnExporter
