"""Per-layer cosine of OpenVINO int8 (NNCF defaults) against fp32, by op friendly name, on a pretrained model
(default tf_efficientnet_lite0): where the int8 IR loses the network. Output: benchmarks/openvino_int8_layers.txt.

    OMP_NUM_THREADS=1 python benchmarks/openvino_int8_layers.py [MODEL]
"""
import sys
import numpy as np, torch
torch.set_num_threads(1)
import openvino as ov, nncf
from edgecls.models import create_model, get_model_info
from edgecls.export.calibration import load_image_sets
name = sys.argv[1] if len(sys.argv) > 1 else "tf_efficientnet_lite0"
info = get_model_info(name); R = info.resolution
model = create_model(name, pretrained=True).eval()
sets = load_image_sets(info, "builtin", R, 100)
calib, parity = sets.calibration, sets.parity[:8]
prog = torch.export.export(model, (torch.from_numpy(calib[:1]),))
fp32 = ov.convert_model(prog, input=[(1, 3, R, R)])
q = nncf.quantize(ov.convert_model(prog, input=[(1, 3, R, R)]), nncf.Dataset([calib[i:i+1] for i in range(len(calib))]), subset_size=100)
types = ("Convolution", "GroupConvolution", "MatMul", "Clamp", "Add", "ReduceMean", "Pad")
names = [op.get_friendly_name() for op in fp32.get_ordered_ops() if op.get_type_name() in types]
qops = {op.get_friendly_name(): op for op in q.get_ordered_ops()}
fops = {op.get_friendly_name(): op for op in fp32.get_ordered_ops()}
common = [n for n in names if n in qops]
print(len(names), "compute-ish ops,", len(common), "in int8 model", flush=True)
from openvino import opset13 as ops
def probe(m):
    by = {op.get_friendly_name(): op for op in m.get_ordered_ops()}
    return ov.Model([ops.result(by[n].output(0)) for n in common], m.get_parameters(), "probe")
core = ov.Core(); cfg = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
cf, cq = core.compile_model(probe(fp32), "CPU", cfg), core.compile_model(probe(q), "CPU", cfg)
cos = {n: [] for n in common}; rng = {n: [] for n in common}
for i in range(len(parity)):
    rf, rq = cf(parity[i:i+1]), cq(parity[i:i+1])
    for k, n in enumerate(common):
        a = rf[k].ravel().astype(np.float64); b = rq[k].ravel().astype(np.float64)
        cos[n].append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30)); rng[n].append((a.min(), a.max()))
prev = 1
for n in common:
    c = float(np.mean(cos[n])); lo = min(r[0] for r in rng[n]); hi = max(r[1] for r in rng[n])
    flag = " <==" if prev - c > 0.01 else ""
    print(f"{fops[n].get_type_name():17s} {c:.4f}  range [{lo:.3g}, {hi:.3g}]  {n[:80]}{flag}")
    prev = c
