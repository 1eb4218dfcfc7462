"""Is edgecls ever slower than exporting by hand? edgecls's artifacts against each tool's defaults.

"By hand" is what a user gets from the tools' documented defaults, on the same edgecls network
and the same calibration images:
- ONNX fp32: ``torch.onnx.export(model, x, dynamo=True)``; int8: onnxruntime ``quantize_static``
  (QDQ, S8 activations and S8 weights, per-channel) after ``quant_pre_process``;
- OpenVINO fp32: ``openvino.convert_model`` of that ONNX, ``save_model`` (its default fp16 weight
  compression); int8: ``nncf.quantize`` with its defaults on the converted model;
- LiteRT fp32: ``litert_torch.convert(model, (x,)).export(...)``.
Both sides are timed by ``edgecls bench`` (fresh process per measurement) in alternating rounds
(edgecls artifact, by-hand artifact, ...), so drift of a shared machine hits both alike; a row
takes each side's best round median. The verdict per model and thread count compares edgecls's
fastest artifact that passed parity with the fastest by-hand artifact (any runtime, precision):
ratio = edgecls / by hand, <= 1.00 is the goal. By-hand int8 artifacts also get the parity figures
edgecls would have judged them by (on the same held-out views), to show what speed costs there.

    python benchmarks/by_hand.py squeezenet1_1 mobilenetv2_100 --threads 1,2
    python benchmarks/by_hand.py --models '*' --rounds 3 --seconds 1.5      # the whole zoo (long)

Writes benchmarks/by_hand.md and by_hand.json (merged per model, so runs resume).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HERE = REPO / "benchmarks"
JSON_PATH = HERE / "by_hand.json"
MD_PATH = HERE / "by_hand.md"
CALIB_SIZE = 100


def _calibration(name: str, resolution: int):
    from edgecls.export.calibration import load_image_sets
    from edgecls.models import get_model_info

    return load_image_sets(get_model_info(name), "builtin", resolution, CALIB_SIZE)


def export_edgecls(name: str, resolution: int, out: Path) -> list[Path]:
    """edgecls's own export (its defaults for this machine), fp32 + int8, every format."""
    from edgecls.export.pipeline import ExportConfig, run_export
    from edgecls.models import get_model_info

    info = get_model_info(name)
    run = run_export(ExportConfig(model=name, pretrained=info.pretrained is not None, precisions=["fp32", "int8"],
                                  resolution=resolution, out=out, calib_size=CALIB_SIZE))
    return [out / a["file"] for a in run.artifacts if a["status"] == "passed"]


def export_by_hand(name: str, resolution: int, out: Path, sets) -> list[Path]:
    """The tools' defaults, each step as their documentation shows it."""
    import torch

    from edgecls.models import create_model, get_model_info

    info = get_model_info(name)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the same random draw edgecls's export uses
        model = create_model(name, pretrained=info.pretrained is not None).eval()
    x = torch.from_numpy(sets.calibration[:1])
    made: list[Path] = []

    onnx_fp32 = out / f"{name}_byhand_fp32.onnx"
    torch.onnx.export(model, (x,), str(onnx_fp32), dynamo=True)
    made.append(onnx_fp32)

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, input_name: str):
            self.items = iter([{input_name: sets.calibration[i:i + 1]} for i in range(len(sets.calibration))])

        def get_next(self):
            return next(self.items, None)

    import onnx

    input_name = onnx.load(str(onnx_fp32), load_external_data=False).graph.input[0].name
    prepped = out / "prepped.onnx"
    quant_pre_process(str(onnx_fp32), str(prepped))
    onnx_int8 = out / f"{name}_byhand_int8.onnx"
    quantize_static(str(prepped), str(onnx_int8), Reader(input_name), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    prepped.unlink()
    made.append(onnx_int8)

    import nncf
    import openvino as ov

    ov_model = ov.convert_model(str(onnx_fp32))
    ov_fp32 = out / f"{name}_byhand_fp32.xml"
    ov.save_model(ov_model, str(ov_fp32))
    made.append(ov_fp32)
    quantized = nncf.quantize(ov.convert_model(str(onnx_fp32)),
                              nncf.Dataset([sets.calibration[i:i + 1] for i in range(len(sets.calibration))]))
    ov_int8 = out / f"{name}_byhand_int8.xml"
    ov.save_model(quantized, str(ov_int8))
    made.append(ov_int8)

    import litert_torch

    tflite = out / f"{name}_byhand_fp32.tflite"
    litert_torch.convert(model, (x,)).export(str(tflite))
    made.append(tflite)
    return made


def _parity(path: Path, sets, reference) -> dict:
    from edgecls.parity import compare
    from edgecls.runtime.run import run_artifact

    outputs, _ = run_artifact(path, sets.parity, batch=1)
    return compare(reference, outputs).as_dict()


def time_side_by_side(ours: list[Path], by_hand: list[Path], threads: list[int], rounds: int, seconds: float) -> list[dict]:
    from edgecls.bench.harness import benchmark_target, resolve_targets
    from edgecls.bench.stats import TimingConfig

    timing = TimingConfig(warmup_runs=5, warmup_seconds=0.3, min_runs=20, min_seconds=seconds,
                          max_seconds=max(10.0, seconds * 4))
    targets = [("edgecls", t) for t in resolve_targets([str(p) for p in ours])]
    # By-hand files carry no manifest: name their precision from the file name.
    for path in by_hand:
        (target,) = resolve_targets([str(path)])
        target.precision = "int8" if "_int8" in path.name else "fp32"
        targets.append(("by hand", target))
    rows = {(side, t.label, n): {"side": side, "file": Path(t.label).name, "runtime": t.runtime,
                                 "precision": t.precision, "threads": n, "rounds_ms": []}
            for side, t in targets for n in threads}
    # Alternate edgecls and by-hand artifacts of the same runtime and precision within each round.
    order = sorted(targets, key=lambda st: (st[1].runtime, st[1].precision or "", st[0] != "edgecls"))
    for round_index in range(rounds):
        for n in threads:
            for side, target in order:
                record = benchmark_target(target, n, 1, timing)
                rows[(side, target.label, n)]["rounds_ms"].append(record["latency"]["p50_ms"])
                print(f"round {round_index + 1} {side:7s} {Path(target.label).name} {n}T: "
                      f"{record['latency']['p50_ms']:.2f} ms", flush=True)
    for row in rows.values():
        row["best_ms"] = min(row["rounds_ms"])
    return list(rows.values())


def run_model(name: str, threads: list[int], rounds: int, seconds: float) -> dict:
    import torch

    from edgecls.models import create_model, get_model_info

    info = get_model_info(name)
    resolution = info.resolution
    work = Path(tempfile.mkdtemp(prefix=f"byhand_{name}_"))
    try:
        ours = export_edgecls(name, resolution, work / "edgecls")
        sets = _calibration(name, resolution)
        (work / "hand").mkdir()
        hand = export_by_hand(name, resolution, work / "hand", sets)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = create_model(name, pretrained=info.pretrained is not None).eval()
        with torch.no_grad():
            reference = model(torch.from_numpy(sets.parity)).numpy()
        parity = {p.name: _parity(p, sets, reference) for p in hand}
        rows = time_side_by_side(ours, hand, threads, rounds, seconds)
        for row in rows:
            row["parity"] = parity.get(row["file"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdicts = []
    for n in threads:
        mine = [r for r in rows if r["side"] == "edgecls" and r["threads"] == n]
        theirs = [r for r in rows if r["side"] == "by hand" and r["threads"] == n]
        best_mine, best_theirs = min(mine, key=lambda r: r["best_ms"]), min(theirs, key=lambda r: r["best_ms"])
        verdicts.append({"threads": n, "edgecls": best_mine, "by_hand": best_theirs,
                         "ratio": best_mine["best_ms"] / best_theirs["best_ms"]})
    return {"model": name, "resolution": resolution, "weights": "pretrained" if info.pretrained else "random",
            "rows": rows, "verdicts": verdicts}


def write_markdown(data: dict) -> None:
    from edgecls.bench.device import describe_device

    device = describe_device()
    lines = ["# edgecls vs exporting by hand", "",
             f"`python benchmarks/by_hand.py` on {device.cpu} ({device.usable_cores} cores, ISA "
             f"{' '.join(device.isa)}); see the script's docstring for what 'by hand' is and how rows are timed.",
             "", "## Verdict: edgecls's fastest passing artifact vs the fastest by-hand artifact", "",
             "| model | threads | edgecls best | ms | by hand best | ms | ratio |", "|---|---:|---|---:|---|---:|---:|"]
    for model in data["models"].values():
        for v in model["verdicts"]:
            e, h = v["edgecls"], v["by_hand"]
            lines.append(f"| {model['model']} | {v['threads']} | {e['runtime']} {e['precision']} | {e['best_ms']:.2f} | "
                         f"{h['runtime']} {h['precision']} | {h['best_ms']:.2f} | "
                         f"{'**' if v['ratio'] > 1 else ''}{v['ratio']:.2f}{'**' if v['ratio'] > 1 else ''} |")
    lines += ["", "## Per runtime and precision (best round median, ms; by-hand parity on edgecls's held-out views)", "",
              "| model | runtime | precision | threads | edgecls | by hand | ratio | by-hand top-1 agreement / min cosine |",
              "|---|---|---|---:|---:|---:|---:|---|"]
    for model in data["models"].values():
        pairs: dict = {}
        for row in model["rows"]:
            pairs.setdefault((row["runtime"], row["precision"], row["threads"]), {})[row["side"]] = row
        for (runtime, precision, threads), sides in sorted(pairs.items()):
            if len(sides) < 2:
                continue
            e, h = sides["edgecls"], sides["by hand"]
            par = h.get("parity") or {}
            lines.append(f"| {model['model']} | {runtime} | {precision} | {threads} | {e['best_ms']:.2f} | "
                         f"{h['best_ms']:.2f} | {e['best_ms'] / h['best_ms']:.2f} | "
                         f"{par.get('top1_agreement', float('nan')):.1%} / {par.get('min_cosine', float('nan')):.4f} |")
    lines.append("")
    MD_PATH.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: --models pattern)")
    parser.add_argument("--models", dest="pattern", default=None, help="glob over the zoo, e.g. '*' or 'mobilenet*'")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    from edgecls.models import list_models

    names = list(args.models)
    if args.pattern:
        names += [m for m in list_models() if fnmatch.fnmatch(m, args.pattern)]
    if not names:
        parser.error("give model names or --models PATTERN")
    threads = [int(t) for t in args.threads.split(",")]
    data = json.loads(JSON_PATH.read_text()) if JSON_PATH.is_file() else {"models": {}}
    for name in names:
        started = time.monotonic()
        data["models"][name] = run_model(name, threads, args.rounds, args.seconds)
        data["models"][name]["seconds"] = round(time.monotonic() - started, 1)
        data["load_average"] = os.getloadavg()
        JSON_PATH.write_text(json.dumps(data, indent=1))
        write_markdown(data)
        print(f"{name}: done in {data['models'][name]['seconds']} s", flush=True)
    print(f"wrote {MD_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
