"""`edgecls suite run --executor ray`: exports as Ray tasks on a local 2-CPU Ray cluster.

Two small models at 32 px (ONNX fp32), exported by Ray workers: each model's manifest must list a
passed artifact that exists, and the suite says which worker process exported it (not the CLI's).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SUITE = """
name = "ray"
models = [{ name = "mobilenetv1_025", resolution = 32 }, { name = "mobilenetv3_small_075", resolution = 32 }]
formats = ["onnx"]
precisions = ["fp32"]
threads = [1]
torch_baseline = false
weights = "random"

[export]
dir = "exports"

[output]
dir = "results"
"""


def test_exports_run_as_ray_tasks(tmp_path):
    (tmp_path / "suite.toml").write_text(SUITE)
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "edgecls.cli", "suite", "run", "suite.toml", "--executor", "ray",
                             "--export-only"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err[-3000:]
    assert "on Ray (2 CPUs)" in err
    workers = dict(re.findall(r"(\w+): done \(pid (\d+) on ", err))
    assert set(workers) == {"mobilenetv1_025", "mobilenetv3_small_075"}, err[-2000:]
    assert all(int(pid) != proc.pid for pid in workers.values())
    for model in workers:
        manifest = json.loads((tmp_path / "exports" / f"{model}_r32" / "manifest.json").read_text())
        (entry,) = [e for e in manifest["artifacts"] if e["format"] == "onnx"]
        assert entry["status"] == "passed" and (tmp_path / "exports" / f"{model}_r32" / entry["file"]).is_file()
    # Already exported: the local loop finds nothing missing and Ray is not needed again.
    again = subprocess.run([sys.executable, "-m", "edgecls.cli", "suite", "run", "suite.toml", "--executor", "ray",
                            "--export-only"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "on Ray" not in again.stderr
