"""Check edgecls's latency against the runtimes' own benchmark tools, on the same artifact and threads.

For each artifact and thread count, in alternating rounds (edgecls, native tool, edgecls, native
tool, ... so slow drift of a shared machine hits both sides alike):
- OpenVINO .xml: ``benchmark_app -m X -d CPU -hint none -nstreams 1 -api sync -nthreads N
  -infer_precision f32 -t S``, compared by its reported Median latency;
- LiteRT .tflite: ai-edge-litert's ``litert-benchmark --model X --num_threads N --num_runs R
  --warmup_runs W --result_json F``, compared by its mean (``avg_ms``), the figure it leads with.
edgecls's p50 should land within 10 % of the native figure. The per-round figures are kept; the
verdict uses the median over rounds of each side.

    python benchmarks/compare_native.py                  # squeezenet1_1 + mobilevitv2_050, fp32 + int8, 1 and 2 threads
    python benchmarks/compare_native.py a.xml b.tflite --threads 1,2 --seconds 5 --rounds 3

Writes benchmarks/native_comparison.md (and a JSON with every figure beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgecls.bench.device import describe_device  # noqa: E402
from edgecls.bench.harness import benchmark_target, resolve_targets  # noqa: E402
from edgecls.bench.stats import TimingConfig  # noqa: E402

TOLERANCE = 0.10
DEFAULT_MODELS = ("squeezenet1_1", "mobilevitv2_050")  # a CNN and an attention model


def _tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.is_file() else shutil.which(name)


def run_benchmark_app(xml: Path, threads: int, seconds: float) -> dict:
    tool = _tool("benchmark_app")
    if tool is None:
        raise RuntimeError("benchmark_app not found (it ships with the openvino package)")
    command = [tool, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-api", "sync",
               "-nthreads", str(threads), "-infer_precision", "f32", "-t", str(max(1, round(seconds)))]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark_app failed: {text.strip().splitlines()[-1] if text.strip() else proc.returncode}")
    figures = {}
    for key in ("Median", "Average", "Min", "Max"):
        match = re.search(rf"{key}:\s+([\d.]+)\s*ms", text)
        if match:
            figures[key.lower() + "_ms"] = float(match.group(1))
    count = re.search(r"Count:\s+(\d+)\s+iterations", text)
    figures["runs"] = int(count.group(1)) if count else None
    if "median_ms" not in figures:
        raise RuntimeError("benchmark_app printed no Median latency")
    return {"command": "benchmark_app " + " ".join(command[1:]).replace(str(xml), xml.name), "figure": figures["median_ms"],
            "figure_name": "median", **figures}


def run_litert_benchmark(tflite: Path, threads: int, runs: int, warmup: int) -> dict:
    tool = _tool("litert-benchmark")
    base = [tool] if tool else [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [*base, "--model", str(tflite), "--num_threads", str(threads), "--num_runs", str(runs),
                   "--warmup_runs", str(warmup), "--result_json", str(out)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not out.is_file():
            text = (proc.stdout + proc.stderr).strip()
            raise RuntimeError(f"litert-benchmark failed: {text.splitlines()[-1] if text else proc.returncode}")
        latency = json.loads(out.read_text())["latency"]
    shown = " ".join(command[len(base):]).replace(str(tflite), tflite.name).replace(str(out), "result.json")
    return {"command": "litert-benchmark " + shown,
            "figure": latency["avg_ms"], "figure_name": "mean", "mean_ms": latency["avg_ms"],
            "median_ms": latency["median_ms"], "min_ms": latency["min_ms"], "max_ms": latency["max_ms"],
            "runs": latency["num_runs"]}


def default_artifacts() -> list[Path]:
    found = []
    for model in DEFAULT_MODELS:
        folder = REPO / "benchmarks" / "exports" / model
        for precision in ("fp32", "int8"):
            for suffix in (".xml", ".tflite"):
                path = folder / f"{model}_{precision}{suffix}"
                if path.is_file():
                    found.append(path)
    return found


def compare(artifacts: list[Path], threads: list[int], seconds: float, rounds: int) -> list[dict]:
    timing = TimingConfig(warmup_runs=5, warmup_seconds=0.5, min_runs=50, min_seconds=seconds,
                          max_seconds=max(seconds * 3, 10))
    rows = []
    for path in artifacts:
        (target,) = resolve_targets([str(path)])
        for n in threads:
            row = {"artifact": path.name, "runtime": target.runtime, "precision": target.precision, "threads": n,
                   "rounds": []}
            for round_index in range(rounds):
                ours = benchmark_target(target, n, 1, timing)
                if path.suffix == ".xml":
                    native = run_benchmark_app(path, n, seconds)
                else:
                    native = run_litert_benchmark(path, n, runs=max(50, ours["latency"]["runs"]), warmup=5)
                row["rounds"].append({"edgecls_p50_ms": ours["latency"]["p50_ms"],
                                      "edgecls_mean_ms": ours["latency"]["mean_ms"],
                                      "edgecls_runs": ours["latency"]["runs"], "native": native})
                print(f"{path.name} threads {n} round {round_index + 1}: edgecls p50 "
                      f"{ours['latency']['p50_ms']:.2f} ms, native {native['figure_name']} {native['figure']:.2f} ms",
                      flush=True)
            ours_median = statistics.median(r["edgecls_p50_ms"] for r in row["rounds"])
            native_median = statistics.median(r["native"]["figure"] for r in row["rounds"])
            # The tool's other central figure, for a like-for-like reading (median vs p50, mean vs mean).
            native_other = "median_ms" if path.suffix == ".tflite" else "average_ms"
            row.update(native_other_ms=statistics.median(r["native"].get(native_other) or float("nan")
                                                         for r in row["rounds"]),
                       native_other_name="median" if path.suffix == ".tflite" else "average")
            row.update(edgecls_p50_ms=ours_median, native_ms=native_median,
                       native_figure=row["rounds"][0]["native"]["figure_name"],
                       native_command=row["rounds"][0]["native"]["command"],
                       ratio=ours_median / native_median, within=abs(ours_median / native_median - 1) <= TOLERANCE)
            rows.append(row)
    return rows


def write_markdown(rows: list[dict], out: Path, seconds: float, rounds: int, load: tuple, load_after: tuple) -> None:
    device = describe_device()
    lines = [
        "# edgecls vs the runtimes' own benchmark tools",
        "",
        f"Generated {datetime.now():%Y-%m-%d %H:%M} by `python benchmarks/compare_native.py` on {device.cpu} "
        f"({device.usable_cores} cores, {device.os}); openvino {device.versions.get('openvino', '?')}, "
        f"ai-edge-litert {device.versions.get('ai-edge-litert', '?')}.",
        f"Load average (1/5/15 min) before: {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, "
        f"after: {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}.",
        "",
        f"Each artifact and thread count ran {rounds} alternating rounds (edgecls, then the native tool) of about "
        f"{seconds:g} s each; a row compares the median over rounds of edgecls's p50 (nearest rank, fresh "
        "process, warm-up 5 runs and 0.5 s) with the median over rounds of the tool's figure: benchmark_app's "
        "Median latency (`-hint none -nstreams 1 -api sync -nthreads N -infer_precision f32`), litert-benchmark's "
        f"mean (`--num_threads N`, as many runs as edgecls timed). Target: within {TOLERANCE:.0%}.",
        "",
        "| artifact | runtime | threads | edgecls p50 ms | native tool | native ms | edgecls / native | within 10 % "
        "| rounds (edgecls p50 / native ms) | also: edgecls mean, native median/average ms |",
        "|---|---|---:|---:|---|---:|---:|---|---|---|",
    ]
    for row in rows:
        per_round = "; ".join(f"{r['edgecls_p50_ms']:.2f} / {r['native']['figure']:.2f}" for r in row["rounds"])
        tool = "benchmark_app median" if row["runtime"] == "openvino" else "litert-benchmark mean"
        mean = statistics.median(r["edgecls_mean_ms"] for r in row["rounds"])
        lines.append(f"| {row['artifact']} | {row['runtime']} | {row['threads']} | {row['edgecls_p50_ms']:.2f} | "
                     f"{tool} | {row['native_ms']:.2f} | {row['ratio']:.3f} | {'yes' if row['within'] else 'NO'} | "
                     f"{per_round} | {mean:.2f}; {row['native_other_name']} {row['native_other_ms']:.2f} |")
    lines += ["", "Commands of the native tools (artifact path shortened):", ""]
    lines += [f"- `{row['native_command']}`" for row in rows]
    lines.append("")
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps({"device": device.to_dict(), "rows": rows}, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help=".xml and .tflite files (default: the DEFAULT_MODELS exports)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per run of each side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per artifact and thread count")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "native_comparison.md")
    args = parser.parse_args()
    artifacts = args.artifacts or default_artifacts()
    artifacts = [a for a in artifacts if a.suffix in (".xml", ".tflite")]
    if not artifacts:
        print("no .xml or .tflite artifact: run `edgecls suite run benchmarks/suites/quick.toml` first", file=sys.stderr)
        return 2
    threads = [int(t) for t in args.threads.split(",")]
    load = os.getloadavg()
    rows = compare(artifacts, threads, args.seconds, args.rounds)
    write_markdown(rows, args.out, args.seconds, args.rounds, load, os.getloadavg())
    print(f"wrote {args.out}")
    return 0 if all(r["within"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
