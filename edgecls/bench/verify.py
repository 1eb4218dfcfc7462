"""Parity where the artifact runs: the export's own inputs and PyTorch outputs, recomputed here.

The export pipeline keeps, beside manifest.json, the held-out inputs it checked parity on and the
PyTorch logits for them (``<model>_r<res>.parity-inputs.npy`` / ``.reference.npy``); each manifest
entry names them under ``parity_data``. ``verify_target`` runs the artifact on those inputs in a
fresh process (a runtime that crashes or fails to compile takes only that process down) and
applies the entry's own ``parity_rule``, so a device whose kernels differ (int8 on another ISA,
an f16 default) is judged by the same rule as the export, with both figures side by side.

Run as ``python -m edgecls.bench.verify ARTIFACT INPUTS.npy OUT.npy [BATCH]`` it is the child.
Needs numpy and the artifact's runtime only.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from edgecls.parity import INPUTS_SUFFIX, REFERENCE_SUFFIX  # noqa: F401 - the names the export writes


def parity_files(target) -> tuple[Path, Path] | None:
    """(inputs, reference) of a Target from an export folder, if the export kept them."""
    data = (target.manifest_entry or {}).get("parity_data")
    if not isinstance(data, dict) or not data.get("inputs") or not data.get("reference"):
        return None
    # Relative to the export folder; absolute where a device client placed them.
    base = Path(target.export_dir or ".")
    inputs, reference = base / data["inputs"], base / data["reference"]
    return (inputs, reference) if inputs.is_file() and reference.is_file() else None


def _rule(entry: dict):
    from edgecls.parity import ParityRule

    rule = entry.get("parity_rule")
    if isinstance(rule, dict) and rule.get("precision"):
        return ParityRule(**rule)
    return None


def verify_target(target, timeout: float = 900) -> dict:
    """Parity figures of ``target`` computed here, judged by its export's rule, beside the export's figures."""
    import numpy as np

    from edgecls.parity import compare

    files = parity_files(target)
    if files is None:
        return {"checked": False, "reason": "the export folder keeps no parity inputs (exported before they were kept)"}
    inputs_path, reference_path = files
    with tempfile.TemporaryDirectory(prefix="edgecls-verify-") as tmp:
        out = Path(tmp) / "outputs.npy"
        proc = subprocess.run([sys.executable, "-m", "edgecls.bench.verify", str(target.path), str(inputs_path), str(out)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out.is_file():
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            why = lines[-1][:300] if lines else f"exit code {proc.returncode}"
            return {"checked": True, "passed": False, "reason": f"the artifact did not run: {why}"}
        outputs = np.load(out)
    figures = compare(np.load(reference_path), outputs)
    rule = _rule(target.manifest_entry)
    reason = rule.check(figures) if rule else None
    return {"checked": True, "passed": reason is None, "reason": reason, "figures": figures.as_dict(),
            "rule": rule.as_dict() if rule else None, "export_figures": target.manifest_entry.get("parity")}


def attach(results: dict, targets: list) -> None:
    """Verify each target once and put the figures on its records (``device_parity``)."""
    by_label = {t.label: t for t in targets}
    done: dict[str, dict] = {}
    for record in results["results"]:
        target = by_label.get(record["target"])
        if target is None or not target.path:
            continue
        if target.label not in done:
            done[target.label] = verify_target(target)
        record["device_parity"] = done[target.label]


def summary_lines(results: dict) -> list[str]:
    """One line per verified artifact: this device's figures, the rule, the export's figures."""
    lines, seen = [], set()
    for record in results["results"]:
        check = record.get("device_parity")
        key = (record.get("device_name"), record["target"])
        if not check or key in seen:
            continue
        seen.add(key)
        where = f"{record['device_name']}: " if record.get("device_name") else ""
        name = Path(record["target"]).name
        if not check.get("checked"):
            lines.append(f"parity here {where}{name}: not checked ({check['reason']})")
            continue
        figures, export = check.get("figures") or {}, check.get("export_figures") or {}
        status = "passed" if check["passed"] else f"FAILED: {check['reason']}"

        def fmt(f: dict) -> str:
            return (f"rel diff {f['max_rel_diff']:.1e}, cosine {f['min_cosine']:.5f}, top-1 {f['top1_agreement']:.0%}"
                    if f else "-")

        lines.append(f"parity here {where}{name}: {status}; here {fmt(figures)}; at export {fmt(export)}")
    return lines


def _child(artifact: str, inputs: str, out: str) -> int:
    import numpy as np

    from edgecls.runtime.run import run_artifact

    outputs, _ = run_artifact(Path(artifact), np.load(inputs))
    np.save(out, outputs)
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))
