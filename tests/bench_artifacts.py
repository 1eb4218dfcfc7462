"""Tiny artifacts for the benchmark tests, built without torch.

The network: Conv 3->8 (3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm 8->10 on a
32x32 input. MACs: conv 8*32*32 outputs x 3*3*3 = 221,184, Gemm 8*10 = 80, total 221,264.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_MACS = 8 * 32 * 32 * 27 + 8 * 10
TINY_TFLITE = Path(__file__).parent / "data" / "bench_tiny.tflite"
# The [timing] section of a test suite that times a tiny artifact: one warm-up run, at least five
# timed runs, at most five seconds a cell (the runs count is what the tests check, never the time).
QUICK_TIMING = """
[timing]
warmup_runs = 1
warmup_seconds = 0
min_runs = 5
min_seconds = 0
max_seconds = 5
"""


def write_tiny_onnx(path: Path, batch: int | str = 1, metadata: dict | None = None) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_tiny_openvino(onnx_path: Path, xml_path: Path) -> Path:
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path
