"""arm64 conformance, repeatable on an x86 machine: `make test-arm64` (as root).

1. An emulated Debian arm64 root: debootstrap --arch=arm64 bookworm (Debian's packages) run through
   qemu-user-static via binfmt_misc.
2. Inside it, edgecls[runtime] from a wheel of this checkout and the aarch64 wheels of its
   dependencies from PyPI (pip install --platform ..._aarch64 --only-binary=:all: --target, run by
   the host's pip, pinned by constraints.txt), used by the root's Debian python3; no torch.
3. Artifacts exported on x86 (`edgecls export --target arm64`, random weights, fp32/fp16/int8 of
   ONNX, OpenVINO, TFLite and NCNN), the int8 artifacts of the x86 profile (`--target x86-avx2`)
   beside them (the arm64 profile's int8 settings judged by ARM numerics), and the x86 outputs of
   each artifact on its export's parity inputs.
4. For each emulated core (QEMU_CPU): in a private mount namespace, /proc, a real sysfs (XNNPACK
   reads /sys/devices/system/cpu/{possible,present}; OpenVINO reads sysfs) and a /proc/cpuinfo that
   matches QEMU_CPU (OpenVINO picks its kernels from it; edgecls names the core from it), then
   benchmarks/arm64/inside.py: loads, runs, parity vs PyTorch and vs x86.
   Also benchmarks/arm64/ov_hints.py: the OpenVINO int8 and fp16 IRs under each inference-precision
   hint (the plugin's default, f32, f16), the measurement behind edgecls.runtime.openvino's per-ISA hint.
5. The table: benchmarks/arm64_conformance.md (+ .json). Timings under emulation are not benchmarks.

The emulated cores run side by side, each in its own process under `nice` (one per core of this
machine); the root and the x86 exports are cached in --work (outside git) between runs.

Why named cores and not qemu's default `max`: qemu 7.2's `max` (SVE2/SME) gives wrong int8 results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"  # Python 3.11, glibc 2.36: every runtime's aarch64 wheel installs
PYTHON_VERSION = "3.11"
MANYLINUX = ["manylinux2014_aarch64"] + [f"manylinux_2_{v}_aarch64" for v in (17, 24, 26, 27, 28, 31, 34, 35, 36)]
MODELS = ["squeezenet1_1", "mobilenetv3_small_075", "mobilevitv2_050"]  # issue 12's three: ReLU CNN, SE/hard-swish CNN, attention
# 64 px: emulation costs ~0.2-1 s per inference here, and every artifact runs its 64 parity views
# (plus 4 timed runs) on each core. The three models are defined at 64 px (mobilevitv2's 2x2 patches
# still tile its stride-32 map).
RESOLUTION = 64
# (profile, formats exported, precisions checked on the emulated cores). The arm64 profile is what
# `--target arm64` builds; the x86 profile's int8 artifacts run beside them so the arm64 profile's
# int8 settings are judged by ARM numerics (issue 12, item 7). ExecuTorch is not here: its runner
# needs torch on the device (the pybindings take torch tensors), see the table's header.
PROFILES = [("arm64", "onnx,openvino,tflite,ncnn", ("fp32", "fp16", "int8")),
            ("x86-avx2", "onnx,openvino,tflite", ("int8",))]
# OpenVINO int8 of a ReLU CNN from NNCF rather than onnxruntime's QDQ (the "auto" route for
# squeezenet): whether the QDQ route is what fails to compile on cores without dotprod. A profile
# written to the work folder: the arm64 profile plus [openvino.int8] quantizer = "nncf".
VARIANTS = {"arm64-ov-nncf": ("openvino", ("int8",), ["squeezenet1_1"], '\n[openvino.int8]\nquantizer = "nncf"\n')}
# Runtimes installed in the root beside edgecls[runtime]: ncnn's wheel (numpy-only; the ncnn extra
# would also pull torch and pnnx, which only the exporting side needs).
EXTRA_RUNTIMES = ["ncnn"]
# What /proc/cpuinfo says on each emulated core (Linux arm64 format; features as the kernel lists
# them for qemu's model of that core). MIDR parts: Neoverse-N1 0xd0c, Cortex-A72 0xd08.
CORES = {
    "neoverse-n1": ("0x3", "0xd0c", "1", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                                           "asimdrdm lrcpc dcpop asimddp ssbs"),
    "cortex-a72": ("0x0", "0xd08", "3", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


def ensure_binfmt() -> None:
    if not Path("/proc/sys/fs/binfmt_misc/status").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"])
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        run(["update-binfmts", "--enable", "qemu-aarch64"])


def ensure_root(root: Path) -> None:
    if (root / "usr/bin/python3").exists():
        return
    log(f"debootstrap --arch=arm64 {SUITE} {root} (a few minutes under qemu)")
    run(["debootstrap", "--arch=arm64", "--variant=minbase", "--include=python3",
         SUITE, str(root), MIRROR])


def ensure_install(root: Path) -> tuple[str, str]:
    """edgecls[runtime] for aarch64 in the root; (python, PYTHONPATH) to run it there.

    The host's pip installs the aarch64 wheels with ``--platform ... --target`` (wheels are archives:
    nothing of them runs at install time), instead of pip running under qemu inside the root, which
    takes tens of minutes for the same files. The root's own Debian python3 runs them. The
    dependencies (``/opt/edgecls-deps``) are keyed by constraints.txt and reinstalled only when it
    changes; edgecls itself (``/opt/edgecls-pkg``, no deps) by the digest of the checkout's package.
    """
    import hashlib

    from edgecls.devices.package import build_wheel, install_tag

    platforms = [arg for tag in MANYLINUX for arg in ("--platform", tag)]
    pip = [sys.executable, "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), "--only-binary=:all:",
           *platforms, "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    deps, pkg = root / "opt/edgecls-deps", root / "opt/edgecls-pkg"
    deps_tag = hashlib.sha256((REPO / "constraints.txt").read_bytes() + (REPO / "pyproject.toml").read_bytes()
                              + " ".join(EXTRA_RUNTIMES).encode()).hexdigest()[:12]
    if not (deps / ".installed").is_file() or (deps / ".installed").read_text() != deps_tag:
        wheel = build_wheel()
        log("pip install --platform ..._aarch64 --target: the aarch64 wheels of edgecls[runtime] from PyPI")
        shutil.rmtree(deps, ignore_errors=True)
        run([*pip, "--target", str(deps), f"{wheel}[runtime]", *EXTRA_RUNTIMES])
        shutil.rmtree(deps / "edgecls", ignore_errors=True)  # edgecls itself lives in edgecls-pkg
        (deps / ".installed").write_text(deps_tag)
    if not (pkg / ".installed").is_file() or (pkg / ".installed").read_text() != install_tag():
        shutil.rmtree(pkg, ignore_errors=True)
        run([*pip, "--no-deps", "--target", str(pkg), str(build_wheel())])
        (pkg / ".installed").write_text(install_tag())
    return "/usr/bin/python3", "/opt/edgecls-pkg:/opt/edgecls-deps"


def ensure_exports(exports: Path, models: list[str]) -> list[tuple[Path, tuple[str, ...]]]:
    """(export folder, precisions to check there) for every model and profile, exporting what is missing."""
    folders = []
    for model in models:
        for profile, formats, precisions in PROFILES:
            folder = exports / f"{model}_r{RESOLUTION}_{profile}"
            if not (folder / "manifest.json").is_file():
                log(f"export {model} at {RESOLUTION} px on x86 with --target {profile} ({formats})")
                run(["nice", "-n", "10", sys.executable, "-m", "edgecls.cli", "export", model, "--target", profile,
                     "--formats", formats, "--random-weights", "--calib-size", "16", "--resolution", str(RESOLUTION),
                     "--out", str(folder)], env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
            folders.append((folder, precisions))
        for variant, (formats, precisions, variant_models, extra) in VARIANTS.items():
            if model not in variant_models:
                continue
            profile = exports.parent / f"{variant}.toml"
            profile.write_text((REPO / "edgecls/export/targets/arm64.toml").read_text() + extra)
            folder = exports / f"{model}_r{RESOLUTION}_{variant}"
            if not (folder / "manifest.json").is_file():
                log(f"export {model} at {RESOLUTION} px on x86 with --target {profile} ({formats})")
                run(["nice", "-n", "10", sys.executable, "-m", "edgecls.cli", "export", model, "--target", str(profile),
                     "--formats", formats, "--random-weights", "--calib-size", "16", "--resolution", str(RESOLUTION),
                     "--out", str(folder)], env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
            folders.append((folder, precisions))
    return folders


def ensure_rejected(work: Path) -> list[tuple[Path, Path]]:
    """(int8 ONNX, its export folder) for each arm64-profile int8 ONNX the export rejected on its x86
    parity, rebuilt by benchmarks/arm64/int8_rejected.py so the ARM cores can judge it."""
    out = []
    for folder in sorted((work / "exports").glob(f"*_r{RESOLUTION}_{PROFILES[0][0]}")):
        manifest = json.loads((folder / "manifest.json").read_text())
        for entry in manifest["artifacts"]:
            if entry["format"] == "onnx" and entry["precision"] == "int8" and entry["status"] == "failed" and entry.get("parity"):
                onnx = work / "rejected" / entry["intended_file"]
                if not onnx.is_file():
                    onnx.parent.mkdir(parents=True, exist_ok=True)
                    log(f"rebuild the rejected {entry['intended_file']} (arm64 profile) for the ARM cores")
                    run(["nice", "-n", "10", sys.executable, str(Path(__file__).parent / "arm64" / "int8_rejected.py"),
                         str(folder), str(onnx)], env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
                out.append((onnx, folder))
    return out


def same_as_arm64(folder: Path) -> list[str]:
    """Files of another profile's export that are the arm64 profile's artifact again: the same model
    file, or for OpenVINO the same .bin (weights and quantization constants; the .xml differs in node
    names and rt_info only). The profiles' int8 settings do not reach every converter: TFLite's
    [tflite.int8] of x86-avx2 equals the default, and NNCF's OpenVINO int8 (attention and
    squeeze-excite models) does not read [onnx.int8]. Running them twice would measure nothing new."""
    import hashlib

    from edgecls.formats import format_of

    if folder.name.endswith(f"_{PROFILES[0][0]}"):
        return []
    arm64 = folder.with_name(folder.name.rsplit("_", 1)[0] + f"_{PROFILES[0][0]}")
    same = []
    for path in folder.iterdir():
        if not path.is_file() or path.name.endswith(".npy") or not any(path.name.endswith(s) for s in (".onnx", ".xml", ".tflite")):
            continue
        key = path.with_suffix(".bin") if format_of(path).name == "openvino" else path
        twin = arm64 / key.name
        if twin.is_file() and hashlib.sha256(twin.read_bytes()).digest() == hashlib.sha256(key.read_bytes()).digest():
            same.append(path.name)
    return sorted(same)


def x86_outputs(folders: list[Path]) -> None:
    """Each artifact's outputs on this x86 machine for its export's parity inputs, beside the artifact."""
    import numpy as np

    from edgecls.bench.harness import targets_from_manifest
    from edgecls.bench.verify import parity_files
    from edgecls.runtime.run import run_artifact

    for folder, precisions in folders:
        for target in targets_from_manifest(folder):
            out = Path(target.path + ".x86-outputs.npy")
            if target.precision not in precisions:
                continue
            files = parity_files(target)
            if out.is_file() or files is None:
                continue
            outputs, _ = run_artifact(Path(target.path), np.load(files[0]))
            np.save(out, outputs)


def cpuinfo_text(core: str, processors: int) -> str:
    variant, part, revision, features = CORES[core]
    return "".join(f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                   f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n"
                   for i in range(processors))


def run_core(root: Path, python: str, pythonpath: str, core: str, work: Path, rejected: list[str]) -> dict:
    """inside.py (the table's rows) then ov_hints.py on one emulated core, under nice; its results."""
    cpuinfo = work / f"cpuinfo-{core}.txt"
    cpuinfo.write_text(cpuinfo_text(core, os.cpu_count() or 1))
    base = f"/opt/conformance-{core}"
    irs = sorted(str(Path(base) / p.relative_to(root / base.lstrip("/")))
                 for p in (root / base.lstrip("/") / "exports").glob(f"*_{PROFILES[0][0]}/*_*.xml")
                 if p.stem.rsplit("_", 1)[-1] in ("int8", "fp16"))
    env = f"env QEMU_CPU={core} OMP_NUM_THREADS=1 PYTHONPATH={pythonpath}"
    script = " && ".join([
        f"mount -t proc proc {root}/proc", f"mount -t sysfs sysfs {root}/sys",
        f"mount --bind {cpuinfo} {root}/proc/cpuinfo",
        f"chroot {root} {env} {python} {base}/inside.py {base}/exports {base}/result.json {base}/plan.json",
        f"chroot {root} {env} {python} {base}/ov_hints.py {base}/ov_hints.json {' '.join(irs)}",
        *(f"chroot {root} {env} {python} {base}/int8_rejected.py --check {base}/rejected/{name} "
          f"{base}/exports/{folder} {base}/rejected/{name}.json" for name, folder in rejected),
    ])
    log(f"{core}: running inside the root")
    started = time.monotonic()
    with open(work / f"log-{core}.txt", "w") as logfile:
        subprocess.run(["nice", "-n", "10", "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       check=True, stdout=logfile, stderr=subprocess.STDOUT)
    data = json.loads((root / base.lstrip("/") / "result.json").read_text())
    data["ov_hints"] = json.loads((root / base.lstrip("/") / "ov_hints.json").read_text())
    data["rejected"] = [json.loads((root / base.lstrip("/") / "rejected" / f"{name}.json").read_text())
                        for name, _ in rejected]
    data["seconds"] = round(time.monotonic() - started, 1)
    log(f"{core}: done in {data['seconds']:.0f} s")
    return data


def _fig(check: dict | None) -> str:
    if not check or not check.get("checked"):
        return "-"
    f = check.get("figures")
    if not f:
        return f"FAILED: {check.get('reason')}"
    mark = "ok" if check["passed"] else f"**FAILED** ({check['reason']})"
    return f"{mark}: rel {f['max_rel_diff']:.1e}, cos {f['min_cosine']:.5f}, top-1 {f['top1_agreement']:.0%}"


def _count(rows: list[dict], test) -> str:
    return f"{sum(1 for r in rows if test(r))}/{len(rows)}"


def _passed(check: dict | None) -> bool:
    return bool(check and check.get("passed"))


def _cos(check: dict | None) -> str:
    if not check or not check.get("figures"):
        return "did not run" if check and check.get("checked") else "-"
    f = check["figures"]
    return f"{f['min_cosine']:.5f} / {f['top1_agreement']:.0%}" + ("" if check["passed"] else " **fails**")


def export_int8(folders: list[tuple[Path, tuple[str, ...]]]) -> dict[str, dict]:
    """Every int8 artifact the exports tried, built or not, by "model|format|profile": its x86
    export-time status and parity, and whether it is the arm64 profile's file again."""
    out = {}
    for folder, _ in folders:
        same = same_as_arm64(folder)
        profile = folder.name.split(f"_r{RESOLUTION}_", 1)[1]
        for entry in json.loads((folder / "manifest.json").read_text())["artifacts"]:
            if entry["precision"] != "int8":
                continue
            out[f"{entry['model']}|{entry['format']}|{profile}"] = {
                "model": entry["model"], "format": entry["format"], "status": entry["status"],
                "parity": entry.get("parity"), "same_as_arm64": Path(entry.get("file") or "").name in same}
    return out


def table(results: dict[str, dict], seconds: dict | None, parallel: bool, exports: dict | None = None) -> str:
    lines = ["# arm64 conformance (emulated)", "",
             "Reproduce: `make test-arm64` (root; qemu-user-static, debootstrap, binfmt-support from Debian). Artifacts "
             f"exported on x86 (random weights, {RESOLUTION} px, calibration 16 built-in images) with `--target arm64` "
             "(fp32/fp16/int8 of ONNX, OpenVINO, TFLite, NCNN) and, for the int8 settings, `--target x86-avx2` (int8 "
             f"only) run in a Debian {SUITE} arm64 root under qemu-user with edgecls[runtime] (+ the ncnn wheel) "
             "installed from a wheel of the checkout and the runtimes' aarch64 wheels from PyPI (no torch). One child "
             "process per artifact (benchmarks/arm64/inside.py): loads = it opens as `edgecls info` / `bench` open it "
             "(sha256 against the manifest, then the runtime); runs = it computes the parity views one at a time, 1 "
             "thread, each timed (p50 of the 15 after the first). Parity vs PyTorch: 16 of the export's own 64 parity views (every 4th: 4 views of each of its 4 photos), its "
             "PyTorch outputs and rule, recomputed on the emulated core. Parity vs x86: the same artifact's outputs on this x86 machine (AMD EPYC, "
             "AVX2), judged by the same rule. Rules: fp32 max rel diff <= 1e-4, fp16 min cosine >= 0.999, int8 with "
             "random weights min cosine >= 0.9 (top-1 is noise with random weights). p50 under emulation is **not a "
             "benchmark**. ExecuTorch is not in the table: its aarch64 wheel exists (executorch 1.5.1, manylinux_2_28), "
             "but this script's cross-install (the host's pip with --platform) cannot resolve it, since pip evaluates "
             "its markers for the x86 host (coremltools==9.0, no aarch64 wheel), and its runner needs torch on the "
             "device (the pybindings take torch tensors), which the runtime-only install leaves out."]
    if seconds and seconds.get("text"):  # --table-only: durations measured outside this process
        lines += ["", f"**Duration**: {seconds['text']}"]
    elif seconds:
        per_core = ", ".join(f"{core} {data['seconds']:.0f} s" for core, data in results.items())
        lines += ["", f"**Duration** of this run: {seconds['total']:.0f} s in all ({seconds['total'] / 60:.1f} min) on "
                  f"this 2-core AMD EPYC shared with other jobs: setup {seconds['setup']:.0f} s (root, install, exports, "
                  f"x86 outputs; cached in the work folder between runs), emulated cores "
                  f"{'side by side' if parallel else 'one after the other'} under nice: {per_core}."]
    for core, data in results.items():
        device, rows = data["device"], data["rows"]
        partial = "" if data.get("complete", True) else (
            f" **Partial run: {len(rows)} artifacts checked before it was stopped.**")
        bad = [f"{r['file']} ({r['folder'].rsplit('_', 1)[-1]})" for r in rows
               if not (r["loads"] and r["bench"] and _passed(r.get("vs_torch")))]
        lines += ["", f"## QEMU_CPU={core}", "",
                  f"Device record on the emulated core: cpu `{device['cpu']}`, arch `{device['arch']}`, ISA "
                  f"`{' '.join(device['isa'])}`, slug `{device['slug']}`; {device['flops_basis']}; peak: "
                  f"{device['fp32_peak_formula']}. Versions: "
                  + ", ".join(f"{k} {v}" for k, v in device["versions"].items()) + "." + partial, "",
                  f"Summary: {len(rows)} artifacts; load {_count(rows, lambda r: r['loads'])}, run "
                  f"{_count(rows, lambda r: r['bench'])}, parity vs PyTorch here "
                  f"{_count(rows, lambda r: _passed(r.get('vs_torch')))}, parity vs x86 "
                  f"{_count(rows, lambda r: _passed(r.get('vs_x86')))}"
                  + (f"; not conforming: {', '.join(bad)}." if bad else "; every artifact conforms."), "",
                  "| artifact | profile | format | precision | loads | runs | computes in | parity vs PyTorch (here) | "
                  "parity vs x86 | export-time parity (x86) | emulated p50 ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---:|"]
        for row in rows:
            export = row.get("export_parity") or {}
            export_text = (f"rel {export['max_rel_diff']:.1e}, cos {export['min_cosine']:.5f}" if export else "-")
            loads = "yes" if row["loads"] else f"**no**: {row['load_error']}"
            runs = "yes" if row["bench"] else f"**no**: {row['bench_error']}"
            p50 = f"{row['emulated_p50_ms']:.1f}" if row.get("emulated_p50_ms") else "-"
            lines.append(f"| {row['file']} | {row.get('profile') or '-'} | {row['format']} | {row['precision']} | {loads} | "
                         f"{runs} | {row.get('execution_precision') or '-'} | {_fig(row.get('vs_torch'))} | "
                         f"{_fig(row.get('vs_x86'))} | {export_text} | {p50} |")
    # Issue 12, item 7: the arm64 profile's int8 settings against the x86 profile's, by ARM numerics.
    int8 = {}
    for core, data in results.items():
        for row in data["rows"]:
            if row["precision"] == "int8":
                int8.setdefault((row["model"], row["format"]), {})[(row.get("profile"), core)] = row
    if int8 or exports:
        cores = list(results)
        profiles = [p for p, _, _ in PROFILES] + list(VARIANTS)
        lines += ["", "## int8 settings by ARM numerics: `--target arm64` vs `--target x86-avx2`", "",
                  "Min cosine / top-1 agreement against PyTorch fp32, computed on each emulated core (16 parity views) "
                  "and at export time on this AMD EPYC (x86, all 64 views). Random weights: cosine is the figure that "
                  "separates settings; top-1 is noise. `same file`: the profile's setting does not reach that "
                  "converter, its artifact is the arm64 profile's again (not run twice).", "",
                  "| model | format | " + " | ".join(f"{p} on {c}" for p in profiles for c in [*cores, "x86"]) + " |",
                  "|---|---|" + "---|" * (len(profiles) * (len(cores) + 1))]
        exports = exports or {}
        keys = sorted({(e["model"], e["format"]) for e in exports.values()} | set(int8))
        for model, fmt in keys:
            by = int8.get((model, fmt), {})
            cells = []
            for profile in profiles:
                entry = exports.get(f"{model}|{fmt}|{profile}")
                for core in cores:
                    if (profile, core) in by:
                        cells.append(_cos(by[(profile, core)].get("vs_torch")))
                    elif entry and entry.get("same_as_arm64"):
                        cells.append("same file")
                    elif entry and entry["status"] != "passed":
                        cells.append("not built")
                    else:
                        cells.append("-")
                parity = (entry or {}).get("parity") or {}
                export_text = f"{parity['min_cosine']:.5f} / {parity['top1_agreement']:.0%}" if parity else "-"
                if entry and entry["status"] != "passed":
                    export_text += f" **{entry['status']}**"
                cells.append(export_text if entry else "-")
            lines.append(f"| {model} | {fmt} | " + " | ".join(cells) + " |")
    rejected = [(core, r) for core, data in results.items() for r in data.get("rejected", [])]
    if rejected:
        lines += ["", "Rejected at export, judged on ARM: the export writes no file for an int8 artifact that fails its "
                  "x86 parity; benchmarks/arm64/int8_rejected.py rebuilds it the export's way and the emulated cores "
                  "run it (16 parity views).", "",
                  "| core | artifact (arm64 profile) | x86 export-time | on the emulated core |", "|---|---|---|---|"]
        for core, r in rejected:
            f, e = r["figures"], r["export_parity"]
            lines.append(f"| {core} | {r['file']} | cos {e['min_cosine']:.5f} (rejected: {r['export_error']}) | cos "
                         f"{f['min_cosine']:.5f}, rel {f['max_rel_diff']:.1e}: "
                         f"{'passes' if r['passed'] else '**fails** (' + str(r['reason']) + ')'} |")
    hints = [(core, h) for core, data in results.items() for h in data.get("ov_hints", [])]
    if hints:
        lines += ["", "## OpenVINO inference-precision hint per core (benchmarks/arm64/ov_hints.py)", "",
                  "Each int8 / fp16 IR of the arm64 profile compiled with the plugin's default (no hint), f32 and f16; "
                  "parity on 8 of the 64 parity views (every 8th) against PyTorch by the artifact's rule; conv/matmul layers by "
                  "the precision the compiled graph runs them in.", "",
                  "| core | IR | hint | compiles | computes in | conv/matmul layers | min cos / top-1 | parity |",
                  "|---|---|---|---|---|---|---|---|"]
        for core, h in hints:
            if not h.get("compiles") or not h.get("runs", True):
                lines.append(f"| {core} | {h['file']} | {h['hint']} | {'yes' if h.get('compiles') else '**no**'} | - | - | - | "
                             f"{h.get('error', '')} |")
                continue
            f = h["figures"]
            layers = ", ".join(f"{k} {v}" for k, v in sorted(h["layer_precisions"].items()))
            lines.append(f"| {core} | {h['file']} | {h['hint']} | yes | {h['executes']} | {layers} | "
                         f"{f['min_cosine']:.5f} / {f['top1_agreement']:.0%} | "
                         f"{'ok' if h['passed'] else '**fails**: ' + str(h['reason'])} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/edgecls-arm64"))
    parser.add_argument("--cores", default="neoverse-n1,cortex-a72")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models to export and check")
    parser.add_argument("--table-only", action="store_true", help="write the table from the results already there")
    parser.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=True,
                        help="run the emulated cores side by side (default; each under nice)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "arm64_conformance.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: needs root (debootstrap, chroot, mounts)", file=sys.stderr)
        return 2
    started = time.monotonic()
    work, root = args.work, args.work / "root"
    work.mkdir(parents=True, exist_ok=True)
    ensure_binfmt()
    ensure_root(root)
    python, pythonpath = ensure_install(root)
    folders = ensure_exports(work / "exports", [m.strip() for m in args.models.split(",") if m.strip()])
    x86_outputs(folders)
    rejected = ensure_rejected(work)
    setup_seconds = time.monotonic() - started
    cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    if args.table_only:  # rebuild the table from what earlier (possibly interrupted) runs left
        results = {c: json.loads((root / f"opt/conformance-{c}/result.json").read_text()) for c in cores
                   if (root / f"opt/conformance-{c}/result.json").is_file()}
        for c in results:
            hints = root / f"opt/conformance-{c}/ov_hints.json"
            results[c]["ov_hints"] = json.loads(hints.read_text()) if hints.is_file() else []
            results[c]["rejected"] = [json.loads(p.read_text()) for p in sorted((root / f"opt/conformance-{c}/rejected").glob("*.json"))]
        durations = work / "durations.json"  # what was measured of the interrupted run, if written
        seconds = json.loads(durations.read_text()) if durations.is_file() else None
        args.out.write_text(table(results, seconds, args.parallel, export_int8(folders)))
        args.out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "cores": results,
                                                             "int8_exports": export_int8(folders)}, indent=1))
        return 0
    for core in cores:  # one folder per core: the cores run side by side
        inside = root / f"opt/conformance-{core}"
        shutil.rmtree(inside, ignore_errors=True)
        (inside / "exports").mkdir(parents=True)
        for folder, _ in folders:
            shutil.copytree(folder, inside / "exports" / folder.name, ignore=shutil.ignore_patterns(".edgecls-work-*"))
        (inside / "plan.json").write_text(json.dumps({folder.name: {"precisions": list(precisions),
                                                                    "same_as_arm64": same_as_arm64(folder)}
                                                      for folder, precisions in folders}))
        for script in ("inside.py", "ov_hints.py", "int8_rejected.py"):
            shutil.copy2(Path(__file__).parent / "arm64" / script, inside / script)
        (inside / "rejected").mkdir()
        for onnx, _ in rejected:
            shutil.copy2(onnx, inside / "rejected" / onnx.name)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(cores) if args.parallel else 1) as pool:
        names = [(onnx.name, folder.name) for onnx, folder in rejected]
        futures = {core: pool.submit(run_core, root, python, pythonpath, core, work, names) for core in cores}
        results = {core: future.result() for core, future in futures.items()}
    total = time.monotonic() - started
    seconds = {"total": round(total, 1), "setup": round(setup_seconds, 1)}
    args.out.write_text(table(results, seconds, args.parallel, export_int8(folders)))
    args.out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "cores": results,
                                                         "int8_exports": export_int8(folders)}, indent=1))
    log(f"wrote {args.out} in {total:.0f} s")
    failed = [(c, r["file"]) for c, d in results.items() for r in d["rows"] if not (r["loads"] and r["bench"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
