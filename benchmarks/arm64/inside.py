"""Runs inside the emulated arm64 root, with the runtime-only edgecls installed from its wheel.

    python inside.py EXPORTS_DIR OUT.json [PLAN.json]

For every artifact of every export folder under EXPORTS_DIR (PLAN.json: folder name -> the
precisions to check there and the files identical to the arm64 profile's; default all), in one
child process per artifact (imports under qemu cost more than the inferences): does it load (sha256
against the manifest, then its runtime, as `edgecls info` / `bench` open it), does it run (every
inference timed: emulated, not a benchmark), and its parity here against PyTorch (the export's own
inputs, reference and rule) and against the x86 outputs of the same artifact
(``<file>.x86-outputs.npy``, written by arm64_conformance.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


# Every 4th of the export's 64 parity views (4 of each of its 4 photos): under emulation each view
# costs ~0.1-1 s per artifact (64 px, 2 cores shared with other jobs), and 16 views still show a
# kernel that breaks the rule (fp32 max rel diff, fp16 / random-weight int8 min cosine).
VIEW_STRIDE = 4


def child(artifact: str, inputs: str, out: str) -> int:
    """In its own process, so a runtime that crashes or fails to compile takes only this artifact:
    open it as `edgecls info` / `bench` do (sha256 against the manifest, then the runtime), then run
    the parity views one at a time, timing each inference (the first is the warm-up)."""
    import time

    import numpy as np

    from edgecls.runtime.run import describe_runner, open_verified, run_batches

    record = Path(out + ".json")
    runner = open_verified(artifact, threads=1)
    record.write_text(json.dumps({"loads": True, **describe_runner(runner)}))
    x = np.load(inputs)
    outputs, seconds = [], []
    for view in x:
        started = time.perf_counter()
        outputs.append(run_batches(runner, view[None]))
        seconds.append(time.perf_counter() - started)
    np.save(out, np.concatenate(outputs))
    record.write_text(json.dumps({"loads": True, "runs": True, **describe_runner(runner), "seconds": seconds}))
    return 0


def check_one(target, row: dict) -> None:
    """Loads, runs (timed: emulated, not a benchmark) and parity against both references, from one child."""
    import tempfile

    import numpy as np

    from edgecls.bench.verify import parity_files
    from edgecls.parity import ParityRule, compare

    files = parity_files(target)
    if files is None:
        raise RuntimeError("no parity inputs in the export folder")
    with tempfile.TemporaryDirectory() as tmp:
        out, inputs = Path(tmp) / "outputs.npy", Path(tmp) / "inputs.npy"
        np.save(inputs, np.load(files[0])[::VIEW_STRIDE])
        proc = subprocess.run([sys.executable, __file__, "--child", target.path, str(inputs), str(out)],
                              capture_output=True, text=True, timeout=1800)
        record = json.loads(Path(str(out) + ".json").read_text()) if Path(str(out) + ".json").is_file() else {}
        why = None
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and "MIDR_EL1" not in ln]
            why = (lines or [f"exit code {proc.returncode}"])[-1][:300]
        row["loads"] = bool(record.get("loads"))
        row["load_error"] = None if row["loads"] else why
        row["bench"] = bool(record.get("runs"))
        row["bench_error"] = None if row["bench"] else why
        row["execution_precision"] = record.get("execution_precision")
        row["export_parity"] = target.manifest_entry.get("parity")
        if not row["bench"]:
            failed = {"checked": True, "passed": False, "reason": f"the artifact did not run: {why}"}
            row["vs_torch"], row["vs_x86"] = failed, failed
            return
        timed = sorted(record["seconds"][1:])
        row["emulated_p50_ms"] = 1000 * timed[len(timed) // 2]
        row["timed_runs"] = len(timed)
        outputs = np.load(out)
    rule = ParityRule(**target.manifest_entry["parity_rule"])
    checks = []
    for reference in (files[1], Path(target.path + ".x86-outputs.npy")):
        if not reference.is_file():
            checks.append(None)
            continue
        figures = compare(np.load(reference)[::VIEW_STRIDE], outputs)
        reason = rule.check(figures)
        checks.append({"checked": True, "passed": reason is None, "reason": reason, "figures": figures.as_dict(),
                       "rule": rule.as_dict()})
    row["vs_torch"], row["vs_x86"] = checks


def main(exports: str, out: str, plan: str | None = None) -> int:
    from edgecls.bench.device import describe_device
    from edgecls.bench.harness import targets_from_manifest

    rows = []
    wanted = json.loads(Path(plan).read_text()) if plan else {}
    targets = [t for folder in sorted(p.parent for p in Path(exports).glob("*/manifest.json"))
               for t in targets_from_manifest(folder)
               if folder.name not in wanted or (t.precision in wanted[folder.name]["precisions"]
                                                and Path(t.path).name not in wanted[folder.name]["same_as_arm64"])]
    # fp32 of every format first, then int8 (its kernels differ per ISA), then fp16: a run cut short
    # still covers each format and the precision most likely to differ.
    order = {"fp32": 0, "int8": 1, "fp16": 2}
    targets.sort(key=lambda t: (order.get(t.precision, 3), t.format, t.path))
    for target in targets:
        row = {"file": Path(target.path).name, "model": target.model, "format": target.format,
               "precision": target.precision, "folder": Path(target.path).parent.name,
               "profile": target.manifest_entry.get("target")}
        try:
            check_one(target, row)
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


if __name__ == "__main__":
    sys.exit(child(*sys.argv[2:5]) if sys.argv[1] == "--child" else main(*sys.argv[1:4]))
