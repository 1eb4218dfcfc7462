"""`edgecls drift` on scikit-learn's handwritten digits: disjoint splits do not drift, rotated + noised digits do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecls.drift import detect_drift, mmd_test

N_PER_SIDE = 300
RESOLUTION = 64  # Lite0's ImageNet features at a small input: enough to tell digits apart, cheap on CPU


def _write(images: np.ndarray, folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).convert("RGB").save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("drift")
    digits = load_digits()
    pixels = [np.asarray(Image.fromarray((im * (255 / 16)).astype(np.uint8)).resize((32, 32), Image.BILINEAR))
              for im in digits.images]
    order = np.random.default_rng(0).permutation(len(pixels))
    ref, cur = order[:N_PER_SIDE], order[N_PER_SIDE:2 * N_PER_SIDE]
    rng = np.random.default_rng(1)
    shifted = []
    for i in cur:  # the kind of change a camera moved or a noisier sensor brings
        img = Image.fromarray(pixels[i]).rotate(float(rng.uniform(25, 60)), resample=Image.BILINEAR)
        noisy = np.asarray(img, dtype=np.float64) + rng.normal(0, 40, (32, 32))
        shifted.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return {"reference": _write(np.stack([pixels[i] for i in ref]), root / "reference"),
            "same": _write(np.stack([pixels[i] for i in cur]), root / "same"),
            "shifted": _write(np.stack(shifted), root / "shifted")}


def test_mmd_matches_the_textbook_estimator() -> None:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) written as explicit pair loops, same bandwidth."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)), rng.normal(0.5, 1.0, size=(9, 3))
    result = mmd_test(x, y, permutations=50)
    sigma = result["bandwidth"]

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma ** 2))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    assert result["mmd2"] == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    z = np.concatenate([x, y])
    d2 = [np.sum((z[i] - z[j]) ** 2) for i in range(len(z)) for j in range(i + 1, len(z))]
    assert sigma == pytest.approx(np.sqrt(np.median(d2) / 2))


def test_disjoint_splits_do_not_drift(digit_folders, tmp_path) -> None:
    report = detect_drift(digit_folders["reference"], digit_folders["same"], model="tf_efficientnet_lite0",
                          pretrained=True, resolution=RESOLUTION, permutations=200, out=tmp_path)
    print(report["verdict"])
    assert report["tests"]["embedding_mmd"]["p_value"] > 0.05
    assert not report["drifted"] and report["verdict"].startswith("no drift")
    assert (tmp_path / "report.md").is_file() and (tmp_path / "model.png").is_file()


def test_rotated_noised_digits_drift(digit_folders, tmp_path) -> None:
    report = detect_drift(digit_folders["reference"], digit_folders["shifted"], model="tf_efficientnet_lite0",
                          pretrained=True, resolution=RESOLUTION, permutations=200, out=tmp_path)
    print(report["verdict"])
    assert report["tests"]["embedding_mmd"]["p_value"] < 0.01
    assert "embedding_mmd" in report["drifted"] and report["verdict"].startswith("DRIFT")
    assert "recalibrate" in report["hint"] or "--calib" in report["hint"]
    # Noise raises the contrast of near-binary digits; the input statistics see it without a model.
    assert report["tests"]["input_contrast"]["p_value"] < 0.01


def test_cli_verdict_and_bad_input(digit_folders, tmp_path) -> None:
    from typer.testing import CliRunner

    from edgecls.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["drift", "--reference", str(digit_folders["reference"]), "--current",
                             str(digit_folders["shifted"]), "--out", str(tmp_path / "cli")])
    assert ok.exit_code == 0, ok.output
    assert "DRIFT" in ok.output
    few = _write(np.zeros((3, 32, 32), np.uint8), tmp_path / "few")
    import contextlib
    import io
    import sys

    from edgecls.cli import main

    err, argv = io.StringIO(), sys.argv
    sys.argv = ["edgecls", "drift", "--reference", str(few), "--current", str(digit_folders["same"])]
    try:
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    assert exit_info.value.code == 2
    assert err.getvalue().strip().count("\n") == 0 and "at least" in err.getvalue()
