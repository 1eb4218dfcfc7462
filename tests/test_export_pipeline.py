"""The export pipeline: every available format end to end, isolation of broken converters,
manifest merging, calibration/parity sets, target profiles and bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edgecls
from edgecls.errors import CheckpointError, EdgeclsError, InvalidArgumentError, UnknownModelError
from edgecls import formats
from edgecls.export import registry
from edgecls.export.base import Exporter
from edgecls.export.calibration import load_image_sets
from edgecls.parity import compare, rule_for
from edgecls.export.pipeline import ExportConfig, run_export
from edgecls.manifest import LOCK_NAME, sha256_of
from edgecls.export.profiles import detect_target, list_profiles, load_profile

NAME, RESOLUTION = "squeezenet1_1", 64
# Formats whose runtime runs here (Core ML only on macOS: tests/test_export_coreml.py covers it off macOS).
AVAILABLE = [f for f in formats.export_formats() if registry.format_available(f) and formats.get_format(f).runs_here()]


# Deliberately broken converters, imported by the pipeline's child process through the format table.
class RaisingExporter(Exporter):
    format = "boom"

    def export(self, request, precision, dest):
        raise RuntimeError("converter exploded on purpose")


class SegfaultExporter(Exporter):
    format = "segv"

    def export(self, request, precision, dest):
        import ctypes

        dest.write_bytes(b"half an artifact")  # must never reach --out
        ctypes.string_at(0)  # SIGSEGV: the whole interpreter dies


def _config(out: Path, **kwargs) -> ExportConfig:
    defaults = dict(model=NAME, resolution=RESOLUTION, calib_size=8, out=out)
    defaults.update(kwargs)
    return ExportConfig(**defaults)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Every available format in fp32 and int8 on a tiny model (random weights)."""
    out = tmp_path_factory.mktemp("export_all")
    run = run_export(_config(out, formats=AVAILABLE, precisions=["fp32", "int8"]))
    return run


def test_every_format_exports_and_passes_parity(full_run):
    run = full_run
    assert [(a["format"], a["precision"]) for a in run.artifacts] == [
        (f, p) for f in AVAILABLE for p in ("fp32", "int8") if p in formats.get_format(f).precisions]
    failed = {f"{a['format']} {a['precision']}": a["error"] for a in run.artifacts if a["status"] != "passed"}
    assert not failed, failed
    assert run.ok
    manifest = json.loads(run.manifest_path.read_text())
    assert len(manifest["artifacts"]) == len(run.artifacts)
    for entry in manifest["artifacts"]:
        path = run.out / entry["file"]
        assert path.is_file() and sha256_of(path) == entry["sha256"]
        # the model's files: OpenVINO's .xml + .bin, NCNN's .param + .bin; not a metadata sidecar
        model_files = [path, *(run.out / s["file"] for s in entry["side_files"] if not s["file"].endswith(".json"))]
        assert entry["size_bytes"] == sum(os.path.getsize(p) for p in model_files)
        for side in entry["side_files"]:
            assert sha256_of(run.out / side["file"]) == side["sha256"]
        assert entry["input"]["shape"][1:] in ([3, RESOLUTION, RESOLUTION], [RESOLUTION, RESOLUTION, 3])
        assert entry["preprocessing"]["resolution"] == RESOLUTION
        assert entry["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
        assert entry["tools"]["torch"] == torch.__version__
        assert entry["seconds"]["total"] > 0
        parity = entry["parity"]
        if entry["precision"] == "fp32":
            assert parity["max_rel_diff"] <= 1e-4
        else:
            # random weights: int8 is judged on the logit direction (see edgecls.parity)
            assert entry["parity_rule"] == {"precision": "int8", "min_cosine": 0.9}
            assert parity["min_cosine"] >= 0.9 and parity["max_rel_diff"] > 1e-4
        assert entry["calibration"] is None or entry["calibration"]["calibration_images"] == 8
    # no scratch left behind: only artifacts, the manifest and its lock file
    leftovers = [p.name for p in run.out.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME]
    assert not leftovers


def test_broken_converters_are_isolated_and_recorded(full_run, tmp_path, monkeypatch):
    """A raising converter and a segfaulting one fail alone; ONNX fp16 still builds; the earlier
    run's artifacts stay untouched and stay in the merged manifest."""
    out = tmp_path / "out"
    shutil.copytree(full_run.out, out)
    before = json.loads((out / "manifest.json").read_text())["artifacts"]
    monkeypatch.setattr(formats, "FORMATS", {
        "boom": formats.Format("boom", ".boom", "onnxruntime", "runtime", f"{__name__}:RaisingExporter"),
        **formats.FORMATS,
        "segv": formats.Format("segv", ".segv", "onnxruntime", "runtime", f"{__name__}:SegfaultExporter"),
    })
    run = run_export(_config(out, formats=["boom", "onnx", "segv"], precisions=["fp16"]))
    by_format = {a["format"]: a for a in run.artifacts}
    assert by_format["boom"]["status"] == "failed"
    assert "converter exploded on purpose" in by_format["boom"]["error"]
    assert by_format["segv"]["status"] == "failed"
    assert "SIGSEGV" in by_format["segv"]["error"] and "fp16" in by_format["segv"]["error"]
    assert by_format["onnx"]["status"] == "passed"
    assert by_format["onnx"]["parity"]["min_cosine"] >= 0.999
    assert not run.ok

    manifest = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert len(manifest) == len(before) + 3
    errors = {a["format"]: a["error"] for a in manifest if a["status"] == "failed"}
    assert set(errors) == {"boom", "segv"}
    for entry in before:  # rebuilt nothing of the first run: same files, same hashes
        assert sha256_of(out / entry["file"]) == entry["sha256"]
        assert entry in manifest
    # the crashed converter's half-written file never reaches --out
    assert not list(out.glob("*.segv"))
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_rerun_replaces_only_what_it_rebuilt(full_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(full_run.out, out)
    manifest = json.loads((out / "manifest.json").read_text())["artifacts"]
    onnx_int8 = next(a for a in manifest if a["format"] == "onnx" and a["precision"] == "int8")
    untouched = {a["file"]: (out / a["file"]).stat().st_mtime_ns for a in manifest if a is not onnx_int8}
    # A custom target switches ONNX int8 to s8s8: only that artifact is rebuilt.
    run = run_export(_config(out, formats=["onnx"], precisions=["int8"],
                             target=str(_profile_with_int8(tmp_path, "int8", "int8"))))
    entry = run.artifacts[0]
    assert entry["status"] == "passed", entry["error"]
    assert entry["settings"]["activation_type"] == "int8" and entry["target"] == "custom"
    assert entry["sha256"] != onnx_int8["sha256"]  # s8s8 instead of u8s8: a different file
    for name, mtime in untouched.items():
        assert (out / name).stat().st_mtime_ns == mtime
    merged = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert len(merged) == len(manifest)
    assert [a for a in merged if a["file"] == onnx_int8["file"]] == [entry]


def _profile_with_int8(folder: Path, activation: str, weight: str) -> Path:
    path = folder / "custom.toml"
    path.write_text(f'formats = ["onnx"]\nprecisions = ["int8"]\nthreads = [1]\n\n[onnx.int8]\n'
                    f'activation_type = "{activation}"\nweight_type = "{weight}"\nreduce_range = false\n')
    return path


def test_failed_parity_keeps_the_artifact_out(tmp_path, monkeypatch):
    """With weights given (treated as real), int8 needs top-1 agreement; demanding more than 100 %
    is impossible, so the artifact must be refused and kept out of --out."""
    import edgecls.parity as parity

    weights = tmp_path / "w.pth"
    torch.save(edgecls.create_model(NAME).state_dict(), weights)
    monkeypatch.setattr(parity, "DEFAULT_MIN_AGREEMENT", 1.01)
    run = run_export(_config(tmp_path / "out", weights=weights, formats=["onnx"], precisions=["int8"]))
    entry = run.artifacts[0]
    assert entry["status"] == "failed" and entry["error"].startswith("parity failed: top-1 agreement")
    assert entry["file"] is None and entry["parity"]["top1_agreement"] <= 1.0
    assert not (tmp_path / "out" / entry["intended_file"]).exists()
    assert entry["weights"] == "file:w.pth"


# -- parity figures ----------------------------------------------------------------------------


def test_parity_figures_on_known_numbers():
    ref = np.array([[1.0, 2.0, 4.0], [3.0, 0.0, -1.0]])
    same = compare(ref, ref)
    assert same.max_abs_diff == 0 and same.min_cosine == pytest.approx(1.0) and same.top1_agreement == 1.0
    shifted = compare(ref, ref + np.array([[0.0, 0.0, 0.04], [0.0, 4.0, 0.0]]))
    assert shifted.max_abs_diff == pytest.approx(4.0) and shifted.max_rel_diff == pytest.approx(1.0)
    assert shifted.top1_agreement == 0.5
    assert shifted.min_cosine == pytest.approx((3 * 3 + 0 + 1) / (np.sqrt(10) * np.sqrt(26)))
    assert compare(ref, np.full_like(ref, np.nan)).min_cosine == -1.0
    assert rule_for("fp32", False).check(compare(ref, ref * (1 + 2e-4))).startswith("max relative diff")
    assert rule_for("int8", True, 0.5).check(shifted) is None
    assert rule_for("int8", True).check(shifted) == "top-1 agreement 50.0% < 95% (1 miss, fp32 top-2 logit gap 3)"


# -- calibration and parity images -------------------------------------------------------------


def test_builtin_sets_are_deterministic_and_disjoint():
    info = edgecls.get_model_info(NAME)
    first = load_image_sets(info, "builtin", 64, 20)
    again = load_image_sets(info, "builtin", 64, 20)
    np.testing.assert_array_equal(first.calibration, again.calibration)
    assert first.calibration.shape == (20, 3, 64, 64) and first.parity.shape[1:] == (3, 64, 64)
    parity_photos = {n.split("#")[0] for n in first.parity_names}
    assert parity_photos == {"chelsea", "coffee", "grace_hopper", "china"} and len(first.parity) == 64
    assert not parity_photos & {n.split("#")[0] for n in first.calibration_names}
    # no parity input is (close to) any calibration input
    distances = np.abs(first.parity[:, None] - first.calibration[None]).mean(axis=(2, 3, 4))
    assert distances.min() > 0.05
    assert len({a.tobytes() for a in first.calibration}) == 20
    assert first.warnings and "20 calibration images" in first.warnings[0]
    assert not load_image_sets(info, "builtin", 64, 100).warnings


def test_folder_sets_hold_out_parity_images(tmp_path):
    from PIL import Image

    info = edgecls.get_model_info(NAME)
    rng = np.random.default_rng(0)
    for i in range(12):
        sub = tmp_path / f"class{i % 3}"
        sub.mkdir(exist_ok=True)
        suffix = (".jpg", ".png", ".webp")[i % 3]
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(sub / f"img{i}{suffix}")
    (tmp_path / "notes.txt").write_text("not an image")
    sets = load_image_sets(info, tmp_path, 32, 100)
    assert len(sets.parity) == 2 and len(sets.calibration) == 10
    assert not set(sets.parity_names) & set(sets.calibration_names)
    assert {Path(n).suffix for n in sets.calibration_names} == {".jpg", ".png", ".webp"}
    assert "only 10 calibration images" in sets.warnings[0]
    assert len(load_image_sets(info, tmp_path, 32, 4).calibration) == 4


@pytest.mark.parametrize("content", ["empty", "text", "one"])
def test_unusable_calibration_folders(tmp_path, content):
    folder = tmp_path / "calib"
    folder.mkdir()
    if content == "text":
        (folder / "a.txt").write_text("hello")
        (folder / "b.csv").write_text("1,2")
    if content == "one":
        from PIL import Image

        Image.new("RGB", (8, 8)).save(folder / "only.png")
    out = tmp_path / "out"
    with pytest.raises(EdgeclsError, match="calibration folder") as info:
        run_export(_config(out, calib=folder, formats=["onnx"]))
    assert "\n" not in str(info.value)
    assert not out.exists()


# -- target profiles ---------------------------------------------------------------------------


def test_shipped_profiles_load():
    assert {"x86-avx2", "x86-vnni", "x86-amx", "arm64"} <= set(list_profiles())
    avx2 = load_profile("x86-avx2")
    assert avx2.options["onnx"]["int8"] == {"activation_type": "uint8", "weight_type": "int8", "reduce_range": True,
                                            "per_channel": True, "calibrate_method": "minmax"}
    assert load_profile("x86-vnni").options["onnx"]["int8"]["reduce_range"] is False
    assert load_profile("arm64").options["onnx"]["int8"]["activation_type"] == "int8"
    assert "fp16" in load_profile("arm64").precisions
    assert detect_target() in ("x86-avx2", "x86-vnni", "x86-amx", "arm64")
    from edgecls.export.profiles import target_for

    assert target_for("x86_64", "fpu avx2 avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile".split()) == "x86-amx"
    assert target_for("x86_64", "avx2 avx512_vnni avx512_bf16".split()) == "x86-vnni"  # Zen 4: no AMX
    assert target_for("x86_64", "avx2 avx_vnni".split()) == "x86-vnni"
    assert target_for("x86_64", "avx2 fma".split()) == "x86-avx2"
    assert target_for("aarch64", ["asimd", "bf16"]) == "arm64"
    amx = load_profile("x86-amx")
    assert "bf16" in amx.precisions and amx.options["onnx"]["int8"] == load_profile("x86-vnni").options["onnx"]["int8"]


def test_kept_float_names_resolve_first_last_and_refuse_unknown():
    from edgecls.export.base import resolve_kept_float

    compute = ["conv1", "conv2", "fc"]
    known = {"conv1", "relu", "conv2", "fc"}
    assert resolve_kept_float(["last", "first", "relu", "first"], compute, known, "[onnx.int8] float_nodes",
                              "node") == ["fc", "conv1", "relu"]
    assert resolve_kept_float(["first", "last"], [], set(), "[tflite.int8] float_ops", "op") == []
    with pytest.raises(InvalidArgumentError, match=r"^\[openvino.int8\] float_layers: no layer named 'conv3'$"):
        resolve_kept_float(["conv3"], compute, known, "[openvino.int8] float_layers", "layer")


def test_bad_profiles(tmp_path):
    with pytest.raises(EdgeclsError, match="unknown target 'nope'"):
        load_profile("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('formats = ["onnx", "tensorrt"]\n')
    with pytest.raises(InvalidArgumentError, match="unknown format 'tensorrt'"):
        load_profile(str(bad))
    bad.write_text('formats = ["onnx"]\nthread = [1]\n')
    with pytest.raises(InvalidArgumentError, match="unknown key"):
        load_profile(str(bad))


# -- bad inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(model="resnet50"), UnknownModelError, "unknown model 'resnet50'"),
    (dict(formats=["onnx", "tensorrt"]), InvalidArgumentError, "unknown format 'tensorrt'"),
    (dict(precisions=["int4"]), InvalidArgumentError, "unknown precision 'int4'"),
    (dict(weights="missing.pth"), EdgeclsError, "weights file not found"),
    (dict(resolution=30), InvalidArgumentError, "resolution 30 is too small"),
    (dict(min_agreement=95.0), InvalidArgumentError, "--min-agreement"),
    (dict(opset=13), InvalidArgumentError, "--opset 13"),
    (dict(batch=2, dynamic_batch=True), InvalidArgumentError, "--dynamic-batch"),
    (dict(target="nope"), EdgeclsError, "unknown target"),
])
def test_bad_options_fail_before_any_work(tmp_path, kwargs, error, match):
    out = tmp_path / "out"
    with pytest.raises(error, match=match) as info:
        run_export(_config(out, **kwargs))
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_wrong_weights_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is no checkpoint")
    other = tmp_path / "other.pth"
    torch.save(edgecls.create_model("squeezenet1_0").state_dict(), other)
    for weights, match in ((garbage, "cannot read checkpoint"), (other, "does not fit squeezenet1_1")):
        with pytest.raises(CheckpointError, match=match):
            run_export(_config(tmp_path / "out", weights=weights))
        assert not (tmp_path / "out").exists()


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        with pytest.raises(EdgeclsError, match="--out"):
            run_export(_config(out))


def test_cli_reports_one_line_and_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgecls.cli", "export", "resnet50", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: unknown model 'resnet50': run `edgecls models` to list them"] \
        or proc.stderr.strip().startswith("error: unknown model 'resnet50'")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
