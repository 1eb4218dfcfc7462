"""Core ML export: an ``.mlpackage`` (a folder) through coremltools, fp32, fp16 and int8.

The model is traced with ``torch.jit.trace`` (coremltools' most used PyTorch path) and converted
to an ML program for iOS 17 / macOS 14 (the first target with int8 activation ops).

- fp32: ``compute_precision=FLOAT32``.
- fp16: ``compute_precision=FLOAT16``: weights and arithmetic in float16, what the Neural Engine runs.
- int8: W8A8 from ``coremltools.optimize.torch``'s ``LinearQuantizer``: symmetric per-channel int8
  weights and int8 activations whose observers see ``request.calibration`` (no training steps, the
  fake-quant ranges are frozen after calibration), then converted: Core ML gets
  ``constexpr_affine_dequantize`` weights and quantize / dequantize pairs around activations.
  coremltools' other activation route (``optimize.coreml.experimental.linear_quantize_activations``)
  runs the model to calibrate, which only works on macOS; the torch-side quantizer works anywhere.

Core ML runs only on macOS: off macOS the pipeline records the artifact as converted, not verified
(the ``runs_on`` column of its row in ``edgecls.formats``); on macOS the same parity code runs it through ``edgecls.runtime.coreml``.
Labels, preprocessing and the edgecls version go into the model's user-defined metadata.

``--input-type uint8``: the input is a Core ML image (``ct.ImageType``, RGB) instead of a float
multi-array (see _input_type), the normalisation in the graph. Like every Core ML artifact it is
converted, not verified, off macOS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError, InvalidArgumentError, MissingDependencyError
from edgecls.export.base import Exporter, ExportRequest

INSTALL_HINT = "pip install 'edgecls[coreml]'"


def _import_coremltools() -> Any:
    try:
        import coremltools
    except ImportError:
        raise MissingDependencyError(f"Core ML export needs coremltools: {INSTALL_HINT}") from None
    return coremltools


class CoreMLExporter(Exporter):
    format = "coreml"

    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        ct = _import_coremltools()
        self.check_static_request(request, precision, "Core ML")
        import torch

        from edgecls.export.executorch import example_batch
        from edgecls.export.onnx import artifact_metadata, channels_last_input

        module = channels_last_input(request.model) if request.nhwc else request.model
        # Traced with float input: an image input hands the program float pixel values 0-255.
        sample = torch.from_numpy(example_batch(request, request.calibration[:1] if request.calibration is not None
                                          and len(request.calibration) else None)).float()
        try:
            if precision == "int8":
                module = _int8_module(module, sample, request)
            with torch.no_grad():
                traced = torch.jit.trace(module.eval(), sample)
            compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
            mlmodel = ct.convert(traced, inputs=[_input_type(ct, request, tuple(sample.shape))],
                                 outputs=[ct.TensorType(name="logits")], convert_to="mlprogram",
                                 minimum_deployment_target=ct.target.iOS17, compute_precision=compute)
        except MissingDependencyError:
            raise
        except Exception as exc:  # the converter raises many types; its first line says why
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EdgeclsError(f"coremltools cannot convert {request.info.name} ({precision}): {first}") from exc
        mlmodel.short_description = f"{request.info.name} image classifier exported by edgecls"
        metadata = artifact_metadata(request, precision)
        if request.input_type == "uint8":  # `edgecls info` off macOS reads the input spec from here
            metadata.update(input_dtype="uint8", input_shape=json.dumps(list(sample.shape)), input_kind="image")
        for key, value in metadata.items():
            mlmodel.user_defined_metadata[key] = str(value)
        mlmodel.save(str(dest))


def _input_type(ct, request: ExportRequest, shape: tuple[int, ...]):
    """The program's input: an RGB image for ``--input-type uint8``, else a float multi-array.

    An ``ImageType`` is what an iOS app hands over as a ``CVPixelBuffer`` / ``CGImage`` (8-bit RGB);
    Core ML gives the program its pixel values 0-255 as float, and the byte-input wrapper
    (edgecls.export.app_input) normalises them per channel in the graph. The image type's own
    scale is one number for all channels, so it cannot hold ImageNet's per-channel std: it stays
    1 and its bias 0. ``--nhwc`` only changes how the traced module is read (``channel_first``): an
    image has no layout for the app to choose.
    """
    if request.input_type == "uint8":
        return ct.ImageType(name="input", shape=shape, color_layout=ct.colorlayout.RGB, scale=1.0,
                            bias=[0.0, 0.0, 0.0], channel_first=not request.nhwc)
    return ct.TensorType(name="input", shape=shape)


def _int8_module(module, sample, request: ExportRequest):
    """``module`` with int8 weight and activation fake-quant, ranges calibrated on the request's images."""
    import torch

    from edgecls.export.executorch import calibration_batches

    try:
        from coremltools.optimize.torch.quantization import LinearQuantizer, LinearQuantizerConfig
    except ImportError:
        raise MissingDependencyError(f"Core ML int8 needs coremltools.optimize.torch: {INSTALL_HINT}") from None
    # milestones: observers on from step 0, fake quant from step 0, batch-norm never re-estimated
    # (a huge step), observers frozen after the one calibration step.
    config = LinearQuantizerConfig.from_dict({"global_config": {"quantization_scheme": "symmetric",
                                                                 "milestones": [0, 0, 1_000_000, 1]}})
    from edgecls.models.layers import freeze_same_padding

    freeze_same_padding(module, sample)  # TF 'SAME' convs (tf_efficientnet_*): constants for the fx trace
    quantizer = LinearQuantizer(module, config)
    prepared = quantizer.prepare(example_inputs=(sample,), inplace=False)
    quantizer.step()
    # eval: batch norm keeps its trained statistics (prepare returns a training-mode module, whose
    # batch norm would re-estimate them from the calibration batches); the observers still record.
    prepared.eval()
    with torch.no_grad():
        for chunk in calibration_batches(request):
            prepared(torch.from_numpy(chunk))
    return quantizer.finalize(inplace=False).eval()



EXPORTER = CoreMLExporter


__all__ = ["CoreMLExporter"]
