"""Which int8 recipe per runtime? Accuracy on held-out photos and latency against fp32, measured.

Pretrained tf_efficientnet_lite0 at 224 px, the pipeline's own sets: 100 built-in calibration
images (views of the calibration scenes) and the 64 parity views of the 4 held-out scenes
(edgecls.export.calibration.PARITY_SOURCES: photos calibration never saw). For each runtime
every recipe is exported with the exporter edgecls uses (its settings table is what a target
profile's [FORMAT.int8] table would hold), run on the held-out views and compared with PyTorch:
top-1 agreement with its 95 % Wilson interval, mean / min cosine of the logits.

Latency: the fp32 artifact and every int8 one of a runtime are timed by edgecls' harness (a fresh
process per measurement, 1 thread) in alternating rounds, and the int8 / fp32 ratio is the median of
the per-round ratios: this machine is shared, so absolute times drift but a ratio measured within
one round holds.

    python benchmarks/int8_recipes.py --stage export --runtimes onnx      # one per runtime, in parallel if you like
    python benchmarks/int8_recipes.py --stage bench                       # times every artifact built above
    python benchmarks/int8_recipes.py --stage report                      # writes benchmarks/int8_recipes.md
    python benchmarks/int8_recipes.py --target x86-vnni --stage export    # another profile's [FORMAT.int8] as the base

--target other than x86-avx2 writes to benchmarks/int8_recipes/TARGET/ (and its own .md there).

Output: benchmarks/int8_recipes/ (artifacts, not committed; results JSON) and benchmarks/int8_recipes.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

MODEL = "tf_efficientnet_lite0"
TARGET = "x86-avx2"  # the profile whose [FORMAT.int8] tables the recipes are set on top of
RESOLUTION = 224
CALIB_SIZE = 100
OUT = HERE / "int8_recipes"
REPORT = HERE / "int8_recipes.md"

# Each recipe: its name and the [FORMAT.int8] settings it sets on top of the exporter's defaults.
RECIPES = {
    "onnx": [
        ("minmax (default)", {}),
        ("percentile 99.999", {"calibrate_method": "percentile", "percentile": 99.999}),
        ("percentile 99.99", {"calibrate_method": "percentile", "percentile": 99.99}),
        ("entropy", {"calibrate_method": "entropy"}),
        ("per-tensor weights", {"per_channel": False}),
        ("stem + classifier float", {"float_nodes": ["first", "last"]}),
        ("8-bit weights (no reduce_range)", {"reduce_range": False}),
        ("7-bit weights (reduce_range)", {"reduce_range": True}),
    ],
    "openvino": [
        ("full bias correction (default)", {}),
        ("fast bias correction", {"bias_correction": "fast"}),
        ("preset mixed", {"preset": "mixed"}),
        ("stem + classifier float", {"float_layers": ["first", "last"]}),
        ("8-bit weights (overflow_fix first_layer_only)", {"overflow_fix": "first_layer_only"}),
        ("transformer mode + SmoothQuant 0.95", {"model_type": "transformer", "smooth_quant_alpha": 0.95}),
    ],
    "tflite": [
        ("global min/max (default)", {}),
        ("moving average (quantizer default)", {"activation_range": "moving_average"}),
        ("percentile 99 of per-image ranges", {"activation_range": "percentile", "percentile": 99.0}),
        ("per-tensor weights", {"per_channel": False}),
        ("stem + classifier float", {"float_ops": ["first", "last"]}),
        ("int16 activations", {"activation_bits": 16}),
    ],
}
SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:40]


def _sets():
    import numpy as np
    import torch

    import edgecls
    from edgecls.export.calibration import builtin_sets

    model = edgecls.create_model(MODEL, pretrained=True)
    sets = builtin_sets(model.edgecls_info, RESOLUTION, CALIB_SIZE)
    with torch.no_grad():
        reference = model(torch.from_numpy(sets.parity)).numpy()
    return model, sets, np.asarray(reference)


def export_stage(runtimes: list[str], only: list[str] | None) -> None:
    from rich.progress import Progress

    from edgecls.export.base import ExportRequest
    from edgecls.parity import compare
    from edgecls.export.profiles import load_profile
    from edgecls.export.registry import exporter_class
    from edgecls.runtime.run import run_artifact

    model, sets, reference = _sets()
    profile = load_profile(TARGET)
    OUT.mkdir(parents=True, exist_ok=True)
    for runtime in runtimes:
        folder = OUT / runtime
        (folder / "work").mkdir(parents=True, exist_ok=True)
        results_path = OUT / f"{runtime}.json"
        rows = json.loads(results_path.read_text()) if results_path.is_file() else []
        done = {r["recipe"] for r in rows}
        exporter = exporter_class(runtime)()
        base = dict(profile.options.get(runtime, {}).get("int8", {}))
        todo = [("fp32", None)] + [(name, extra) for name, extra in RECIPES[runtime] if not only or name in only]
        with Progress() as progress:
            task = progress.add_task(runtime, total=len(todo))
            for name, extra in todo:
                if name in done:
                    progress.advance(task)
                    continue
                precision = "fp32" if extra is None else "int8"
                options = {k: v for k, v in profile.options.items()}
                options[runtime] = {**options.get(runtime, {}), "int8": {**base, **(extra or {})}}
                request = ExportRequest(model=model, info=model.edgecls_info, resolution=RESOLUTION, batch=1,
                                        dynamic_batch=False, nhwc=False, opset=18, calibration=sets.calibration,
                                        workdir=folder / "work", options=options)
                dest = folder / f"{_slug(name)}{SUFFIX[runtime]}"
                started = time.monotonic()
                row = {"runtime": runtime, "recipe": name, "precision": precision, "settings": extra, "file": str(dest)}
                try:
                    exporter.export(request, precision, dest)
                    row["export_seconds"] = round(time.monotonic() - started, 1)
                    outputs, _ = run_artifact(dest, sets.parity, batch=1)
                    row["parity"] = compare(reference, outputs).as_dict()
                except Exception as exc:  # noqa: BLE001 - a recipe that fails is a result too
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                rows.append(row)
                results_path.write_text(json.dumps(rows, indent=1))
                progress.console.print(f"{runtime} {name}: {row.get('parity', {}).get('top1_agreement', row.get('error'))}")
                progress.advance(task)


def bench_stage(rounds: int, seconds: float) -> None:
    from edgecls.bench.harness import resolve_targets, run_benchmarks
    from edgecls.bench.stats import TimingConfig

    rows = [r for runtime in RECIPES for r in _load(runtime) if "parity" in r]
    timing = TimingConfig(warmup_runs=5, warmup_seconds=0.5, min_runs=20, min_seconds=seconds, max_seconds=30.0)
    times: dict[str, list[float]] = {r["file"]: [] for r in rows}
    for round_ in range(rounds):
        # Each round times every artifact once, runtimes interleaved, so a slow spell hits them all.
        measured: dict[str, dict] = {}
        run_benchmarks(resolve_targets([r["file"] for r in rows]), [1], 1, timing, stop_on_error=False,
                       on_result=lambda target, n, record, exc: measured.__setitem__(target.label, record or {}))
        for row in rows:
            p50 = (measured.get(row["file"], {}).get("latency") or {}).get("p50_ms")
            if p50:
                times[row["file"]].append(p50)
        print(f"round {round_ + 1}/{rounds} done", flush=True)
    (OUT / "bench.json").write_text(json.dumps({"rounds": rounds, "times": times}, indent=1))


def _load(runtime: str) -> list[dict]:
    path = OUT / f"{runtime}.json"
    return json.loads(path.read_text()) if path.is_file() else []


def report_stage() -> None:
    import platform

    bench = json.loads((OUT / "bench.json").read_text()) if (OUT / "bench.json").is_file() else {"times": {}}
    times = bench["times"]
    cpu = _cpu()
    lines = [
        "# int8 recipes per runtime",
        "",
        f"`python benchmarks/int8_recipes.py --target {TARGET}` on {cpu} ({platform.machine()}), 1 thread. Pretrained "
        f"{MODEL} at {RESOLUTION} px, {CALIB_SIZE} built-in calibration images (scenes: astronaut, rocket, "
        "motorcycle, flower); agreement = top-1 agreement with PyTorch fp32 on the 64 parity views of the 4 "
        "held-out scenes (chelsea, coffee, grace_hopper, china) calibration never saw, with its 95 % Wilson "
        "interval (the 16 views of a photo are correlated, so the real uncertainty is wider). Latency: edgecls "
        f"bench p50, {bench.get('rounds', 0)} alternating rounds; speed-up = median over rounds of fp32 p50 / int8 "
        "p50 of the same round.",
        "",
        "| runtime | recipe | top-1 agreement [95 % CI] | mean / min cosine | p50 ms (median) | speed-up vs fp32 |",
        "|---|---|---|---|---:|---:|",
    ]
    for runtime in RECIPES:
        rows = _load(runtime)
        fp32 = next((r for r in rows if r["precision"] == "fp32"), None)
        fp32_times = times.get(fp32["file"], []) if fp32 else []
        for row in rows:
            parity = row.get("parity")
            if parity is None:
                lines.append(f"| {runtime} | {row['recipe']} | failed: {row.get('error')} | | | |")
                continue
            own = times.get(row["file"], [])
            ratios = [f / i for f, i in zip(fp32_times, own)] if row is not fp32 else []
            agreement = (f"{parity['top1_agreement']:.1%} [{parity['agreement_low']:.1%}-{parity['agreement_high']:.1%}]"
                         f" n={parity['inputs']}")
            lines.append(f"| {runtime} | {row['recipe']} | {agreement} | {parity['mean_cosine']:.4f} / "
                         f"{parity['min_cosine']:.4f} | {statistics.median(own) if own else float('nan'):.1f} | "
                         f"{statistics.median(ratios) if ratios else 1.0:.2f}x |")
    screen = HERE / "int8_recipes_screen.json"
    if screen.is_file():
        # The screening run: every recipe at 64 px with 6 calibration images (--resolution 64
        # --calib-size 6), accuracy only; the recipes it ruled out were not repeated at 224 px.
        lines += ["", "Screening run, all recipes, 64 px, 6 calibration images, accuracy only "
                  "(`--resolution 64 --calib-size 6`; same held-out photos, 64 views):", "",
                  "| runtime | recipe | top-1 agreement [95 % CI] | mean / min cosine |", "|---|---|---|---|"]
        for row in json.loads(screen.read_text()):
            parity = row.get("parity")
            if parity:
                lines.append(f"| {row['runtime']} | {row['recipe']} | {parity['top1_agreement']:.1%} "
                             f"[{parity['agreement_low']:.1%}-{parity['agreement_high']:.1%}] n={parity['inputs']} | "
                             f"{parity['mean_cosine']:.4f} / {parity['min_cosine']:.4f} |")
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                flags = Path("/proc/cpuinfo").read_text()
                isa = "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX2, no VNNI" if " avx2" in flags else "no AVX2"
                return f"{name} ({isa}, {os.cpu_count()} cores)"
    except OSError:
        pass
    return platform_fallback()


def platform_fallback() -> str:
    import platform

    return platform.processor() or "unknown CPU"


def main() -> None:
    global RESOLUTION, CALIB_SIZE, OUT, REPORT, TARGET  # a smoke run (--resolution 64) rescales the whole script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("export", "bench", "report", "all"), default="all")
    parser.add_argument("--runtimes", default="onnx,openvino,tflite")
    parser.add_argument("--only", default=None, help="comma-separated recipe names to (re)build")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--resolution", type=int, default=RESOLUTION, help="smaller for a smoke run")
    parser.add_argument("--calib-size", type=int, default=CALIB_SIZE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--target", default=TARGET, help="target profile the recipes start from")
    args = parser.parse_args()
    RESOLUTION, CALIB_SIZE, TARGET = args.resolution, args.calib_size, args.target
    if TARGET != "x86-avx2" and args.out == OUT:
        args.out = OUT / TARGET
    if args.out != OUT:
        OUT, REPORT = args.out, args.out / "int8_recipes.md"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.stage in ("export", "all"):
        export_stage([r for r in args.runtimes.split(",") if r], args.only.split(",") if args.only else None)
    if args.stage in ("bench", "all"):
        bench_stage(args.rounds, args.seconds)
    if args.stage in ("report", "all"):
        report_stage()


if __name__ == "__main__":
    main()
