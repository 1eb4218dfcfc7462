"""The int8 ONNX that `--target arm64` builds for mobilevitv2_050 but rejects at export: its x86
parity (AVX2 kernels, which saturate s8 x s8 pair sums, see x86-avx2.toml) is cosine 0.886 < 0.9,
so the export writes no file and the ARM cores never see it. This rebuilds it the same way (the
arm64 profile's [onnx.int8] settings, the attention op types, the export's 16 built-in calibration
images at 64 px, from the export folder's fp32 ONNX) so arm64_conformance.py can judge it by ARM
numerics.

    python benchmarks/arm64/int8_rejected.py EXPORT_FOLDER OUT.onnx         (on x86: build it)
    python int8_rejected.py --check OUT.onnx EXPORT_FOLDER RESULT.json      (in the root: judge it)

The check runs it on every 4th parity view (as inside.py) and judges it by the export's int8 rule.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str, out: str) -> int:
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgecls.export.calibration import builtin_sets
    from edgecls.export.onnx import ATTENTION_OP_TYPES
    from edgecls.export.profiles import load_profile
    from edgecls.models.registry import get_model_info

    folder_path = Path(folder)
    manifest = json.loads((folder_path / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["format"] == "onnx" and a["precision"] == "int8")
    fp32 = next(a for a in manifest["artifacts"] if a["format"] == "onnx" and a["precision"] == "fp32")
    settings = load_profile("arm64").options["onnx"]["int8"]
    resolution = int(entry["input"]["shape"][-1])
    sets = builtin_sets(get_model_info(entry["model"]), resolution, int(entry["calibration"]["calibration_images"]))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": x[None].astype(np.float32)} for x in sets.calibration])

        def get_next(self):
            return next(self.items, None)

    prepared = Path(out).with_suffix(".pre.onnx")
    quant_pre_process(str(folder_path / fp32["file"]), str(prepared), skip_symbolic_shape=False)
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    quantize_static(str(prepared), out, Reader(), quant_format=QuantFormat.QDQ, per_channel=settings["per_channel"],
                    reduce_range=settings["reduce_range"], activation_type=qtype[settings["activation_type"]],
                    weight_type=qtype[settings["weight_type"]], calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=ATTENTION_OP_TYPES)
    prepared.unlink()
    print(json.dumps({"settings": settings, "calibration": len(sets.calibration), "out": out}))
    return 0


def check(onnx_path: str, folder: str, out: str) -> int:
    import numpy as np
    import onnxruntime as ort

    from edgecls.parity import ParityRule, compare

    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["format"] == "onnx" and a["precision"] == "int8")
    data = next(a["parity_data"] for a in manifest["artifacts"] if a.get("parity_data"))  # one set per folder
    inputs = np.load(Path(folder) / data["inputs"])[::4]
    reference = np.load(Path(folder) / data["reference"])[::4]
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = np.concatenate([session.run(None, {name: x[None]})[0] for x in inputs])
    figures = compare(reference, outputs)
    reason = ParityRule(**entry["parity_rule"]).check(figures)
    result = {"file": Path(onnx_path).name, "figures": figures.as_dict(), "passed": reason is None, "reason": reason,
              "export_parity": entry["parity"], "export_error": entry["error"]}
    Path(out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(check(*sys.argv[2:5]) if sys.argv[1] == "--check" else main(sys.argv[1], sys.argv[2]))
