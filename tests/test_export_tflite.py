"""TFLite export (litert-torch) and the LiteRT runner, against PyTorch on held-out real photos.

One small model (squeezenet1_1 at 64 px) and one conversion per case, since each takes tens of
seconds: fp32 with a dynamic batch, fp16 with channels-last input, int8 with a static batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch  # noqa: E402

import edgecls  # noqa: E402
from edgecls.bench.litert import LiteRTRunner  # noqa: E402
from edgecls.bench.registry import open_runner  # noqa: E402
from edgecls.errors import InvalidArgumentError  # noqa: E402
from edgecls.export.base import ExportRequest  # noqa: E402
from edgecls.export.calibration import builtin_sets  # noqa: E402
from edgecls.export.parity import FP16_MIN_COSINE, FP32_MAX_REL_DIFF, compare  # noqa: E402
from edgecls.export.registry import exporter_class  # noqa: E402
from edgecls.export.tflite import TFLiteExporter  # noqa: E402

MODEL = "squeezenet1_1"
RESOLUTION = 64
CALIBRATION_IMAGES = 24
# Random weights: int8 must keep the logits' direction (see edgecls.export.parity); measured ~0.9999.
INT8_MIN_COSINE = 0.98


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = edgecls.create_model(MODEL)
    sets = builtin_sets(model.edgecls_info, RESOLUTION, CALIBRATION_IMAGES)
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    return model, sets, reference


def _request(case, workdir: Path, *, batch: int = 1, dynamic_batch: bool = False, nhwc: bool = False) -> ExportRequest:
    model, sets, _ = case
    return ExportRequest(model=model, info=model.edgecls_info, resolution=RESOLUTION, batch=batch,
                         dynamic_batch=dynamic_batch, nhwc=nhwc, opset=17, calibration=sets.calibration,
                         workdir=workdir)


def _run_one_by_one(runner: LiteRTRunner, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([runner.run(inputs[i:i + 1]) for i in range(len(inputs))])


def test_registry_finds_the_exporter_and_runner() -> None:
    assert exporter_class("tflite") is TFLiteExporter
    assert TFLiteExporter.suffix == ".tflite" and set(TFLiteExporter.precisions) == {"fp32", "fp16", "int8"}


def test_bad_requests_fail_before_converting(case, tmp_path: Path) -> None:
    exporter = TFLiteExporter()
    with pytest.raises(InvalidArgumentError, match="precision"):
        exporter.export(_request(case, tmp_path), "int4", tmp_path / "m.tflite")
    with pytest.raises(InvalidArgumentError, match="static batch"):
        exporter.export(_request(case, tmp_path, dynamic_batch=True), "int8", tmp_path / "m.tflite")
    no_calibration = _request(case, tmp_path)
    no_calibration.calibration = None
    with pytest.raises(InvalidArgumentError, match="calibration"):
        exporter.export(no_calibration, "int8", tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_fp32_dynamic_batch_matches_torch(case, tmp_path: Path) -> None:
    _, sets, reference = case
    dest = tmp_path / "model_fp32.tflite"
    TFLiteExporter().export(_request(case, tmp_path, dynamic_batch=True), "fp32", dest)

    runner = open_runner(dest, threads=1)
    assert isinstance(runner, LiteRTRunner)
    assert runner.input_spec.shape == (None, 3, RESOLUTION, RESOLUTION)
    assert (runner.input_spec.dtype, runner.input_spec.layout) == ("float32", "NCHW")
    whole_batch = runner.run(sets.parity)
    figures = compare(reference, whole_batch)
    assert figures.max_rel_diff <= FP32_MAX_REL_DIFF, figures
    # Resizing back to batch 1 gives the same logits as the whole batch.
    assert np.allclose(_run_one_by_one(runner, sets.parity), whole_batch, rtol=0, atol=1e-5 * np.abs(reference).max())


def test_fp16_channels_last_keeps_the_logits(case, tmp_path: Path) -> None:
    _, sets, reference = case
    dest = tmp_path / "model_fp16.tflite"
    TFLiteExporter().export(_request(case, tmp_path, nhwc=True), "fp16", dest)

    runner = LiteRTRunner(dest, threads=1)
    assert runner.input_spec.shape == (1, RESOLUTION, RESOLUTION, 3)
    assert runner.input_spec.layout == "NHWC"
    logits = _run_one_by_one(runner, sets.parity.transpose(0, 2, 3, 1))
    figures = compare(reference, logits)
    assert figures.min_cosine >= FP16_MIN_COSINE, figures
    assert figures.max_rel_diff <= 1e-2, figures  # float16 weights, float32 arithmetic
    # squeezenet1_1 has ~1.24 M conv weights: float16 storage makes the file ~2.5 MB, not ~5 MB.
    assert dest.stat().st_size < 0.6 * 4 * sum(p.numel() for p in case[0].parameters())
    with pytest.raises(InvalidArgumentError, match="takes input of shape"):
        runner.run(sets.parity[:1])  # NCHW fed to an NHWC artifact


def test_int8_is_full_integer_and_close(case, tmp_path: Path) -> None:
    _, sets, reference = case
    dest = tmp_path / "model_int8.tflite"
    TFLiteExporter().export(_request(case, tmp_path, batch=2), "int8", dest)

    runner = LiteRTRunner(dest, threads=1)
    assert runner.input_spec.shape == (2, 3, RESOLUTION, RESOLUTION)
    assert runner.input_spec.dtype == "int8"
    scale, zero_point = runner._input["quantization"]
    assert scale > 0
    # The runner quantizes with the input tensor's own parameters.
    prepared = runner.prepare(sets.parity[:2])
    assert prepared.dtype == np.int8
    expected = np.clip(np.round(sets.parity[:2] / scale) + zero_point, -128, 127)
    assert np.array_equal(prepared.astype(np.int64), expected.astype(np.int64))

    logits = np.concatenate([runner.run(sets.parity[i:i + 2]) for i in range(0, len(sets.parity), 2)])
    figures = compare(reference, logits)
    print(f"\nTFLite int8 {MODEL}@{RESOLUTION}: {figures.as_dict()}")
    assert logits.dtype == np.float32
    assert figures.min_cosine >= INT8_MIN_COSINE, figures
    # int8 weights: about a quarter of the float32 size.
    assert dest.stat().st_size < 0.4 * 4 * sum(p.numel() for p in case[0].parameters())
