"""App-ready inputs: the model's normalisation folded into the graph (``--input-type uint8``).

An app holds camera frames as RGB bytes. ``ByteInput`` wraps the model before any converter sees
it, so every format computes ``(x / 255 - mean) / std`` itself as one per-channel multiply-add
(converters fuse it into the first convolution or keep it as one cheap op): the app feeds pixel
values 0-255 and does no arithmetic. Where the format has a uint8 input
(``BYTE_TENSOR_FORMATS``: ONNX, OpenVINO, TFLite, ExecuTorch) the exporter traces the wrapper with
a uint8 example (OpenVINO: sets the input element type with PrePostProcessor), so the artifact's
input tensor is uint8 and the cast is the graph's first op. NCNN (``ncnn::Mat`` is float;
``Mat::from_pixels`` converts the bytes) and Core ML (an MLMultiArray input is
float32/float16/int32) keep a float input holding 0-255; the metadata says ``input_type: uint8``
either way.

Layout stays each exporter's business (``--nhwc`` works as before): the wrapper is NCHW.

Parity for these artifacts: PyTorch fed the photos through the float preprocessing against the
artifact fed the same crops' raw bytes (``calibration.pixel_bytes`` recovers them exactly: the preprocessing
resizes and crops 8-bit images before scaling, so denormalising and rounding gives the pixels).
"""

from __future__ import annotations

INPUT_TYPES = ("float32", "uint8")
# Formats whose --input-type uint8 artifacts take a real uint8 tensor (see the module docstring).
BYTE_TENSOR_FORMATS = ("onnx", "openvino", "tflite", "executorch")


def input_dtype(request, fmt: str) -> str:
    """The numpy dtype of the artifact's input for format ``fmt``."""
    return "uint8" if getattr(request, "input_type", "float32") == "uint8" and fmt in BYTE_TENSOR_FORMATS else "float32"


def as_input(array, request, fmt: str):
    """``array`` (calibration or example images, bytes held as float for uint8) in the artifact's input dtype."""
    import numpy as np

    if input_dtype(request, fmt) == "uint8":
        return np.clip(np.round(np.asarray(array)), 0, 255).astype(np.uint8)
    return np.asarray(array, dtype=np.float32)


def wrap(model, mean, std):
    """``model`` behind a module that takes RGB byte values (NCHW) and normalises them."""
    import torch

    class ByteInput(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            scale = 1.0 / (255.0 * torch.tensor(std, dtype=torch.float32))
            shift = -torch.tensor(mean, dtype=torch.float32) / torch.tensor(std, dtype=torch.float32)
            self.register_buffer("scale", scale.reshape(1, 3, 1, 1))
            self.register_buffer("shift", shift.reshape(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.float() * self.scale + self.shift)

    wrapped = ByteInput(model).eval()
    wrapped.edgecls_info = getattr(model, "edgecls_info", None)
    return wrapped


__all__ = ["BYTE_TENSOR_FORMATS", "INPUT_TYPES", "as_input", "input_dtype", "wrap"]
