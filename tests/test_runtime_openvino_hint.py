"""OpenVINO's inference-precision hint is chosen per artifact and per ISA (edgecls.runtime.openvino).

The CPU plugin's own default is f16 on every ARM core and bf16 on AVX512_BF16 / AMX CPUs; edgecls
passes a hint so that an fp32 or int8 IR runs what was exported, and an fp16 IR runs f16 only on
cores with fp16 arithmetic (Arm asimdhp). The cpuinfo texts are real boards' (tests/data/cpuinfo).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecls.runtime.base import cpu_bf16_flags, cpu_fp16_flags
from edgecls.runtime.openvino import inference_precision

DATA = Path(__file__).parent / "data" / "cpuinfo"


@pytest.mark.parametrize("name, fp16", [
    ("rpi3_cortex_a53.txt", False),  # Armv8.0-A: no FEAT_FP16
    ("rpi4_cortex_a72.txt", False),
    ("rk3588_a76_a55.txt", True),  # Armv8.2-A cores
    ("graviton2_neoverse_n1.txt", True),
    ("graviton3_neoverse_v1.txt", True),
])
def test_fp16_arithmetic_from_the_features_line(name, fp16):
    assert cpu_fp16_flags((DATA / name).read_text()) == (["asimdhp"] if fp16 else [])


def test_x86_flags_never_mean_arm_fp16():
    # An x86 line carrying avx512_fp16 / f16c (f16 conversions only) does not select the ARM f16 path.
    text = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma f16c avx512_fp16 avx512_bf16\n"
    assert cpu_fp16_flags(text) == []
    assert cpu_bf16_flags(text) == ["avx512_bf16"]


@pytest.mark.parametrize("precision, execution, flags, hint", [
    ("fp32", "f32", ["asimdhp"], "f32"),  # the ARM default f16 would change an fp32 IR's numerics
    ("int8", "f32", ["asimdhp"], "f32"),  # int8 IRs never get f16 (compile failures, accuracy)
    ("fp16", "f32", ["asimdhp"], "f16"),  # the arithmetic an fp16 IR is built for on Armv8.2+
    ("fp16", "f32", [], "f32"),  # Cortex-A72 / x86: weights decompressed, f32 arithmetic
    ("bf16", "bf16", [], "bf16"),  # the bf16 artifact asks for bf16 everywhere (fallback is reported)
    (None, None, ["asimdhp"], "f32"),  # an IR from another tool: f32
])
def test_hint_per_artifact_and_isa(precision, execution, flags, hint):
    metadata = {k: v for k, v in (("precision", precision), ("execution_precision", execution)) if v}
    assert inference_precision(metadata, flags) == hint


# OpenVINO 2026.4's messages, as measured under emulation (benchmarks/arm64_conformance.md).
F16_RANGE = ("Exception from src/inference/src/cpp/core.cpp:117:\nException from src/inference/src/dev/plugin.cpp:54:\n"
             "Exception from src/core/src/pass/graph_rewrite.cpp:298:\n[CommonOptimizations] END: node: "
             "SnippetsOpset::Subgraph relu_5/fq_output_0 (opset1::GroupConvolution Multiply_10889[0]:f16[1,88,8,8]) -> "
             "(u8[1,88,8,8]) CALLBACK HAS THROWN: Exception from src/core/src/pass/graph_rewrite.cpp:298:\n"
             "[FakeQuantizeDecomposition] END: node: opset1::FakeQuantize relu_5/fq_output_0 (opset1::Parameter "
             "Multiply_10889[0]:f16[1,88,8,8]) -> (u8[1,88,8,8]) CALLBACK HAS THROWN: Check 'in_t_range<ET>(value)' "
             "failed at src/core/src/op/constant.cpp:189:\n128675 assigned value out of range for f16\n\n\n")
NOT_INITIALIZED = ("Exception from src/inference/src/cpp/core.cpp:117:\nException from src/inference/src/dev/plugin.cpp:54:\n"
                   "object is not initialized\n")


@pytest.mark.parametrize("message, cause", [(F16_RANGE, "128675 assigned value out of range for f16"),
                                            (NOT_INITIALIZED, "object is not initialized")])
def test_compile_failure_names_the_innermost_cause(message, cause):
    from edgecls.runtime.openvino import _load_error

    line = str(_load_error(Path("m_int8.xml"), RuntimeError(message), "compile for CPU"))
    assert line == f"OpenVINO cannot compile for CPU m_int8.xml: {cause}"


@pytest.mark.parametrize("name, explained", [("rpi4_cortex_a72.txt", True), ("rpi3_cortex_a53.txt", True),
                                             ("graviton2_neoverse_n1.txt", False)])
def test_int8_compile_failure_without_dotprod_says_why(name, explained):
    from edgecls.runtime.base import cpu_flags
    from edgecls.runtime.openvino import int8_without_dotprod

    flags = cpu_flags(("asimd", "asimddp"), (DATA / name).read_text())
    error = "OpenVINO cannot compile for CPU m_int8.xml: object is not initialized"
    added = int8_without_dotprod(error, {"precision": "int8"}, flags)
    assert ("asimddp" in added) is explained
    # Only for that cause and an int8 IR; never on x86 (no asimd flag).
    assert int8_without_dotprod(error, {"precision": "fp32"}, flags) == ""
    assert int8_without_dotprod("OpenVINO cannot compile for CPU m.xml: other", {"precision": "int8"}, flags) == ""
    assert int8_without_dotprod(error, {"precision": "int8"}, cpu_flags(("asimd", "asimddp"), "flags\t: avx2 fma\n")) == ""
