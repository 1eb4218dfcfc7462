"""float16 ONNX from the run's fp32 graph, with float32 input and output (keep_io_types), so every
artifact of a model is fed the same arrays.

The conversion is onnxruntime's ``onnxruntime.transformers.float16`` (onnxconverter-common's
converter, shipped with onnxruntime: no extra dependency). It replaced edgecls' own rewrite after
this measurement (2026-12-01, AMD EPYC AVX2, onnxruntime 1.32, seeded random weights, 64 px,
24 built-in parity views, cosine and max relative difference of the logits against PyTorch fp32):

    model             converter          size MB   min cosine   max rel diff   top-1
    squeezenet1_1     own rewrite         2.497     1.000000      4.11e-04     100 %
    squeezenet1_1     onnxruntime         2.500     1.000000      4.11e-04     100 %
    mobilevitv2_050   own rewrite         2.786     0.999999      1.08e-03     100 %
    mobilevitv2_050   onnxruntime         2.801     0.999999      1.08e-03     100 %

Same parity, and the library also knows which inputs must stay float32 (Resize scales, Range,
TopK...), clips initializers to the float16 range and keeps float32-only ops in float32 behind
Casts. Its one flaw for us: with keep_io_types it appends the input Casts at the end of the node
list, which onnx.checker rejects (nodes not topologically sorted); onnxslim, already the fp32
simplifier, re-sorts the graph.
"""

from __future__ import annotations

from edgecls.errors import MissingDependencyError


def convert_to_fp16(model):
    """A float16 copy of the ModelProto ``model`` (metadata kept) whose input and output stay float32."""
    import onnx
    import onnxslim

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        raise MissingDependencyError("ONNX fp16 needs onnxruntime: pip install 'edgecls[export]'") from None

    source = onnx.ModelProto.FromString(model.SerializeToString())  # the converter edits its argument
    half = convert_float_to_float16(source, keep_io_types=True)
    half = onnxslim.slim(half)
    del half.metadata_props[:]
    half.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(half, full_check=True)
    return half


__all__ = ["convert_to_fp16"]
