"""arm64 conformance, repeatable on an x86 machine: `make test-arm64` (as root).

1. An emulated Debian arm64 root: debootstrap --arch=arm64 bookworm (Debian's packages) run through
   qemu-user-static via binfmt_misc.
2. Inside it, edgecls[runtime] from a wheel of this checkout and the aarch64 wheels of its
   dependencies from PyPI (pip install --platform ..._aarch64 --only-binary=:all: --target, run by
   the host's pip, pinned by constraints.txt), used by the root's Debian python3; no torch.
3. Artifacts exported on x86 (`edgecls export`, random weights, fp32/fp16/int8, every format), and
   the x86 outputs of each artifact on its export's parity inputs.
4. For each emulated core (QEMU_CPU): in a private mount namespace, /proc, a real sysfs (XNNPACK
   reads /sys/devices/system/cpu/{possible,present}; OpenVINO reads sysfs) and a /proc/cpuinfo that
   matches QEMU_CPU (OpenVINO picks its kernels from it; edgecls names the core from it), then
   benchmarks/arm64/inside.py: loads, runs, parity vs PyTorch and vs x86.
5. The table: benchmarks/arm64_conformance.md (+ .json). Timings under emulation are not benchmarks.

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
MODELS = ["mobilenetv3_small_075"]  # --models adds more (each costs minutes under emulation)
RESOLUTION = 96
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
    """edgecls[runtime] for aarch64 in ``root/opt/edgecls-site``; (python, PYTHONPATH) to run it there.

    The host's pip installs the aarch64 wheels with ``--platform ... --target`` (wheels are archives:
    nothing of them runs at install time), instead of pip running under qemu inside the root, which
    takes tens of minutes for the same files. The root's own Debian python3 runs them.
    """
    from edgecls.devices.package import build_wheel, install_tag

    site = root / "opt/edgecls-site"
    marker = site / ".installed"
    if marker.is_file() and marker.read_text() == install_tag():
        return "/usr/bin/python3", "/opt/edgecls-site"
    wheel = build_wheel()
    log("pip install --platform ..._aarch64 --target: the aarch64 wheels of edgecls[runtime] from PyPI")
    shutil.rmtree(site, ignore_errors=True)
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", tag)]
    run([sys.executable, "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), "--only-binary=:all:",
         *platforms, "--python-version", PYTHON_VERSION, "--implementation", "cp", "--target", str(site),
         f"{wheel}[runtime]"])
    marker.write_text(install_tag())
    return "/usr/bin/python3", "/opt/edgecls-site"


def ensure_exports(exports: Path, models: list[str]) -> list[Path]:
    folders = []
    for model in models:
        folder = exports / f"{model}_r{RESOLUTION}"
        if not (folder / "manifest.json").is_file():
            log(f"export {model} at {RESOLUTION} px on x86 (fp32, fp16, int8; onnx, openvino, tflite)")
            run([sys.executable, "-m", "edgecls.cli", "export", model, "--formats", "onnx,openvino,tflite", "--fp16",
                 "--int8", "--calib-size", "16", "--resolution", str(RESOLUTION), "--out", str(folder)],
                env={**os.environ, "PYTHONPATH": str(REPO)})
        folders.append(folder)
    return folders


def x86_outputs(folders: list[Path]) -> None:
    """Each artifact's outputs on this x86 machine for its export's parity inputs, beside the artifact."""
    import numpy as np

    from edgecls.bench.harness import targets_from_manifest
    from edgecls.bench.verify import parity_files
    from edgecls.runtime.run import run_artifact

    for folder in folders:
        for target in targets_from_manifest(folder):
            out = Path(target.path + ".x86-outputs.npy")
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


def run_core(root: Path, python: str, pythonpath: str, core: str, work: Path) -> dict:
    cpuinfo = work / f"cpuinfo-{core}.txt"
    cpuinfo.write_text(cpuinfo_text(core, os.cpu_count() or 1))
    out = f"/opt/conformance-{core}/result.json"
    script = " && ".join([
        f"mount -t proc proc {root}/proc", f"mount -t sysfs sysfs {root}/sys",
        f"mount --bind {cpuinfo} {root}/proc/cpuinfo",
        f"chroot {root} env QEMU_CPU={core} OMP_NUM_THREADS=1 PYTHONPATH={pythonpath} {python} "
        f"/opt/conformance-{core}/inside.py /opt/conformance-{core}/exports {out}",
    ])
    log(f"{core}: running inside the root")
    started = time.monotonic()
    subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], check=True)
    data = json.loads((root / out.lstrip("/")).read_text())
    data["seconds"] = round(time.monotonic() - started, 1)
    return data


def _fig(check: dict | None) -> str:
    if not check or not check.get("checked"):
        return "-"
    f = check.get("figures")
    if not f:
        return f"FAILED: {check.get('reason')}"
    mark = "ok" if check["passed"] else f"**FAILED** ({check['reason']})"
    return f"{mark}: rel {f['max_rel_diff']:.1e}, cos {f['min_cosine']:.5f}, top-1 {f['top1_agreement']:.0%}"


def table(results: dict[str, dict], seconds: dict[str, float]) -> str:
    lines = ["# arm64 conformance (emulated)", "",
             "Reproduce: `make test-arm64` (root; qemu-user-static, debootstrap, binfmt-support from Debian). Artifacts "
             f"exported on x86 (random weights, {RESOLUTION} px, calibration 16 built-in images) run in a Debian "
             f"{SUITE} arm64 root under qemu-user with edgecls[runtime] installed from a wheel of the checkout and the "
             "runtimes' aarch64 wheels from PyPI (no torch). Parity vs PyTorch: the export's own inputs, PyTorch "
             "outputs and rule, recomputed on the emulated core (`bench --verify`). Parity vs x86: the same artifact's "
             "outputs on this x86 machine, judged by the same rule. p50 under emulation is **not a benchmark**.", ""]
    for core, data in results.items():
        device = data["device"]
        partial = "" if data.get("complete", True) else (
            f" **Partial run: {len(data['rows'])} artifacts checked before it was stopped** (emulation is slow on a busy "
            "machine; `make test-arm64` runs them all).")
        lines += [f"## QEMU_CPU={core}", "",
                  f"Device record on the emulated core: cpu `{device['cpu']}`, arch `{device['arch']}`, ISA "
                  f"`{' '.join(device['isa'])}`, slug `{device['slug']}`; {device['flops_basis']}; peak: "
                  f"{device['fp32_peak_formula']}. Versions: "
                  + ", ".join(f"{k} {v}" for k, v in device["versions"].items())
                  + (f". Whole run {seconds[core]:.0f} s." if core in seconds else ".") + partial, "",
                  "| artifact | format | precision | loads | runs | parity vs PyTorch (here) | parity vs x86 | "
                  "export-time parity | emulated p50 ms |",
                  "|---|---|---|---|---|---|---|---|---:|"]
        for row in data["rows"]:
            export = row.get("export_parity") or {}
            export_text = (f"rel {export['max_rel_diff']:.1e}, cos {export['min_cosine']:.5f}" if export else "-")
            loads = "yes" if row["loads"] else f"**no**: {row['load_error']}"
            runs = "yes" if row["bench"] else f"**no**: {row['bench_error']}"
            p50 = f"{row['emulated_p50_ms']:.1f}" if row.get("emulated_p50_ms") else "-"
            lines.append(f"| {row['file']} | {row['format']} | {row['precision']} | {loads} | {runs} | "
                         f"{_fig(row.get('vs_torch'))} | {_fig(row.get('vs_x86'))} | {export_text} | {p50} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/edgecls-arm64"))
    parser.add_argument("--cores", default="neoverse-n1,cortex-a72")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models to export and check")
    parser.add_argument("--table-only", action="store_true", help="write the table from the results already there")
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
    cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    if args.table_only:  # rebuild the table from what earlier (possibly interrupted) runs left
        results = {c: json.loads((root / f"opt/conformance-{c}/result.json").read_text()) for c in cores
                   if (root / f"opt/conformance-{c}/result.json").is_file()}
        args.out.write_text(table(results, {}))
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        return 0
    for core in cores:  # one folder per core: several cores can run at once (--cores X and --cores Y)
        inside = root / f"opt/conformance-{core}"
        shutil.rmtree(inside, ignore_errors=True)
        (inside / "exports").mkdir(parents=True)
        for folder in folders:
            shutil.copytree(folder, inside / "exports" / folder.name, ignore=shutil.ignore_patterns(".edgecls-work-*"))
        shutil.copy2(Path(__file__).parent / "arm64" / "inside.py", inside / "inside.py")
    results, seconds = {}, {}
    for core in cores:
        results[core] = run_core(root, python, pythonpath, core, work)
        seconds[core] = results[core]["seconds"]
        # Written after each core: a long run keeps what it has.
        args.out.write_text(table(results, seconds))
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    log(f"wrote {args.out} in {time.monotonic() - started:.0f} s")
    failed = [(c, r["file"]) for c, d in results.items() for r in d["rows"] if not (r["loads"] and r["bench"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
