"""Runs inside the emulated arm64 root, with the runtime-only edgecls installed from its wheel.

    python inside.py EXPORTS_DIR OUT.json [PLAN.json]

For every artifact of every export folder under EXPORTS_DIR (PLAN.json: folder name -> the
precisions to check there; default all): does it load (`edgecls info`, in its
own process), does it run under the harness (one short measurement: emulated, not a benchmark),
and its parity here against PyTorch (the export's own inputs, reference and rule) and against the
x86 outputs of the same artifact (``<file>.x86-outputs.npy``, written by arm64_conformance.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def compare_outputs(target) -> tuple[dict, dict | None]:
    import tempfile

    import numpy as np

    from edgecls.bench.verify import parity_files
    from edgecls.parity import ParityRule, compare

    files = parity_files(target)
    if files is None:
        return {"checked": False, "reason": "no parity inputs in the export folder"}, None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outputs.npy"
        proc = subprocess.run([sys.executable, "-m", "edgecls.bench.verify", target.path, str(files[0]), str(out)],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not out.is_file():
            why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:300]
            failed = {"checked": True, "passed": False, "reason": f"the artifact did not run: {why}"}
            return failed, failed
        outputs = np.load(out)
    rule = ParityRule(**target.manifest_entry["parity_rule"])
    checks = []
    for reference in (files[1], Path(target.path + ".x86-outputs.npy")):
        if not reference.is_file():
            checks.append(None)
            continue
        figures = compare(np.load(reference), outputs)
        reason = rule.check(figures)
        checks.append({"checked": True, "passed": reason is None, "reason": reason, "figures": figures.as_dict(),
                       "rule": rule.as_dict()})
    return checks[0], checks[1]


def main(exports: str, out: str, plan: str | None = None) -> int:
    from edgecls.bench.device import describe_device
    from edgecls.bench.harness import targets_from_manifest
    from edgecls.bench.stats import TimingConfig

    rows = []
    # 1 warm-up + 3 timed runs: enough to say it runs under the harness; emulated, not a benchmark.
    timing = TimingConfig(warmup_runs=1, warmup_seconds=0, min_runs=3, min_seconds=0, max_seconds=20)
    wanted = json.loads(Path(plan).read_text()) if plan else {}
    targets = [t for folder in sorted(p.parent for p in Path(exports).glob("*/manifest.json"))
               for t in targets_from_manifest(folder)
               if folder.name not in wanted or t.precision in wanted[folder.name]]
    # fp32 of every format first, then int8 (its kernels differ per ISA), then fp16: a run cut short
    # still covers each format and the precision most likely to differ.
    order = {"fp32": 0, "int8": 1, "fp16": 2}
    targets.sort(key=lambda t: (order.get(t.precision, 3), t.format, t.path))
    for target in targets:
        row = {"file": Path(target.path).name, "model": target.model, "format": target.format,
               "precision": target.precision, "folder": Path(target.path).parent.name,
               "profile": target.manifest_entry.get("target")}
        try:
            check_one(target, row, timing)
        except Exception as exc:  # noqa: BLE001 - one artifact's failure is a row of the table, not the end
            row.setdefault("loads", False)
            row.setdefault("bench", False)
            row["bench_error"] = f"{type(exc).__name__}: {exc}"[:300]
        print(json.dumps({k: row.get(k) for k in ("file", "loads", "bench")}), flush=True)
        rows.append(row)
        # After every artifact: emulation is slow, an interrupted run keeps its rows.
        Path(out).write_text(json.dumps({"device": describe_device().to_dict(), "rows": rows,
                                         "complete": len(rows) == len(targets)}, indent=1))
    return 0


def check_one(target, row: dict, timing) -> None:
    from edgecls.bench.harness import run_benchmarks

    info = subprocess.run([sys.executable, "-m", "edgecls.cli", "info", target.path, "--json"],
                          capture_output=True, text=True, timeout=1800)
    row["loads"] = info.returncode == 0
    row["load_error"] = None if row["loads"] else (info.stderr.strip().splitlines() or ["?"])[-1][:300]
    bench = run_benchmarks([target], [1], 1, timing)
    row["bench"] = bool(bench["results"])
    row["bench_error"] = bench["errors"][0]["error"] if bench["errors"] else None
    row["emulated_p50_ms"] = bench["results"][0]["latency"]["p50_ms"] if bench["results"] else None
    if bench["results"]:
        row["execution_precision"] = bench["results"][0].get("execution_precision")
    # One run of the artifact on the export's inputs, compared with both references.
    row["vs_torch"], row["vs_x86"] = compare_outputs(target)
    row["export_parity"] = target.manifest_entry.get("parity")


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
