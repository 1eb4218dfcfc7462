"""The CLI: model table and info, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "edgecls.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def test_info_json_matches_reference_counts() -> None:
    from reference import reference_layouts

    out = run("info", "squeezenet", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    ref = reference_layouts()["torchvision:squeezenet1_1"]
    assert data["name"] == "squeezenet1_1" and data["resolution"] == 224
    assert data["params"] == ref["num_params"]
    assert data["macs"] == pytest.approx(ref["macs_matmul_conv"], rel=0.01)


def test_info_layers_at_other_resolution() -> None:
    out = run("info", "squeezenet1_0", "--resolution", "160", "--layers", "--json")
    data = json.loads(out.stdout)
    assert data["resolution"] == 160
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]


def test_models_json_lists_the_zoo() -> None:
    out = run("models", "squeezenet*", "--json")
    rows = json.loads(out.stdout)
    assert sorted(r["name"] for r in rows) == ["squeezenet1_0", "squeezenet1_1"]
    assert all(r["params"] > 1e6 and r["macs"] > 1e8 for r in rows)


@pytest.mark.parametrize(
    "args,message",
    [
        (("info", "squeezenett"), "unknown model 'squeezenett': did you mean"),
        (("info", "squeezenet", "--resolution", "8"), "too small"),
        (("models", "nomatch*"), "no model matches"),
        (("suite", "run", "benchmarks/suites/quick.toml", "--no-export", "--export-only"), "exclude each other"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message) -> None:
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr
