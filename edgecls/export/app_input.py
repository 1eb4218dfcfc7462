"""App-ready inputs: the model's normalisation folded into the graph (``--input-type uint8``).

An app holds camera frames as RGB bytes. ``ByteInput`` wraps the model before any converter sees
it, so every format computes ``(x / 255 - mean) / std`` itself as one per-channel multiply-add
(converters fuse it into the first convolution or keep it as one cheap op): the app feeds pixel
values 0-255 and does no arithmetic. The artifact's input tensor keeps the float dtype the
converters trace best (a cast from bytes is all an app does; NCNN's ``Mat::from_pixels`` and Core
ML's pixel buffers produce exactly that); the metadata says ``input_type: uint8``.

Layout stays each exporter's business (``--nhwc`` works as before): the wrapper is NCHW.

Parity for these artifacts: PyTorch fed the photos through the float preprocessing against the
artifact fed the same crops' raw bytes (``calibration.pixel_bytes`` recovers them exactly: the preprocessing
resizes and crops 8-bit images before scaling, so denormalising and rounding gives the pixels).
"""

from __future__ import annotations

INPUT_TYPES = ("float32", "uint8")


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


__all__ = ["INPUT_TYPES", "wrap"]
