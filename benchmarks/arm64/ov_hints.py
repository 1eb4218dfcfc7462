"""Runs inside the emulated arm64 root: OpenVINO's CPU plugin under each inference-precision hint.

    python ov_hints.py OUT.json IR.xml [IR.xml ...]

For each IR and each hint (the plugin's own default, f32, f16): does it compile, what precision the
plugin reports it runs in, how many conv/matmul layers run in each precision, and parity on the
every VIEW_STRIDE-th of the export's parity inputs against the PyTorch reference, judged by the artifact's own rule. This is
the measurement behind edgecls.runtime.openvino's per-ISA hint (the ARM default is f16; an int8 IR
fails under it with 'assigned value out of range for f16').
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Every 8th of the export's 64 parity views (2 of each photo): 3 hints x every int8/fp16 IR runs
# under emulation, and a hint's effect (a compile failure, f16 arithmetic) shows on any input.
VIEW_STRIDE = 8

def probe(xml: Path, hint: str | None) -> dict:
    import numpy as np
    import openvino as ov
    import openvino.properties.hint as hints

    from edgecls.parity import ParityRule, compare
    from edgecls.runtime.openvino import _EDGECLS_NAMES, _load_error

    manifest = json.loads((xml.parent / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if Path(a["file"] or "").name == xml.name)
    data = entry["parity_data"]
    inputs, reference = np.load(xml.parent / data["inputs"]), np.load(xml.parent / data["reference"])
    core = ov.Core()
    config = {} if hint is None else {hints.inference_precision: getattr(ov.Type, hint)}
    row: dict = {"file": xml.name, "hint": hint or "default"}
    try:
        compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
    except Exception as exc:  # noqa: BLE001 - the failure is the measurement
        row.update(compiles=False, error=str(_load_error(xml, exc, "compile for CPU")))
        return row
    executed = compiled.get_property(hints.inference_precision).get_type_name()
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and "runtimePrecision" in info and info["layerType"].astype(str) in ("Convolution", "FullyConnected", "MatMul"):
            name = info["runtimePrecision"].astype(str)
            counts[name] = counts.get(name, 0) + 1
    request = compiled.create_infer_request()
    outputs = []
    try:
        for x in inputs[::VIEW_STRIDE]:
            request.infer({0: np.ascontiguousarray(x[None], dtype=np.float32)})
            outputs.append(np.array(request.get_output_tensor(0).data, dtype=np.float32).reshape(-1))
    except Exception as exc:  # noqa: BLE001
        row.update(compiles=True, runs=False, error=str(exc).strip().splitlines()[-1][:240])
        return row
    figures = compare(reference[::VIEW_STRIDE].reshape(len(outputs), -1), np.stack(outputs))
    rule = ParityRule(**entry["parity_rule"])
    reason = rule.check(figures)
    row.update(compiles=True, runs=True, executes=_EDGECLS_NAMES.get(executed, executed), layer_precisions=counts,
               figures=figures.as_dict(), passed=reason is None, reason=reason)
    return row


def main(out: str, irs: list[str]) -> int:
    rows = []
    for xml in irs:
        for hint in (None, "f32", "f16"):
            rows.append(probe(Path(xml), hint))
            print(json.dumps({k: rows[-1].get(k) for k in ("file", "hint", "compiles", "executes", "passed", "error")}),
                  flush=True)
            Path(out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
