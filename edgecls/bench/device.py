"""What machine a benchmark ran on, and that machine's theoretical fp32 peak.

Everything here reads the OS (``/proc/cpuinfo``, sysfs, sysctl) or package metadata: no runtime is
imported, so describing the device costs milliseconds and works in a runtime-only install.

The fp32 peak is ``cores x GHz x FLOPs/cycle/core``. FLOPs/cycle follows from the widest vector
FMA the CPU advertises and an assumed number of FMA pipes per core (stated in the formula); it is a
ceiling to put an achieved GFLOP/s in proportion, not a promise that any runtime reaches it.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

# Packages whose versions identify a measurement; read from metadata, never imported.
VERSIONED_PACKAGES = ("edgecls", "numpy", "onnxruntime", "openvino", "ai-edge-litert", "torch", "onnx")

# ISA features worth knowing for inference speed, under one spelling for every OS.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx", "neon", "dotprod", "i8mm", "bf16", "sve", "sve2", "sme", "fp16")

_LINUX_FLAG_ALIASES = {
    # x86 /proc/cpuinfo "flags"
    "sse4_2": "sse4_2", "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni", "avx512vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16", "amx_tile": "amx",
    # arm64 /proc/cpuinfo "Features"
    "asimd": "neon", "neon": "neon", "asimddp": "dotprod", "i8mm": "i8mm", "bf16": "bf16", "sve": "sve",
    "sve2": "sve2", "sme": "sme", "asimdhp": "fp16",
}

# Arm cores by MIDR (implementer, part number) as /proc/cpuinfo shows them ("CPU implementer",
# "CPU part"): name, fp32 FLOPs/cycle/core, and why. FLOPs/cycle = FMA pipes x fp32 lanes x 2;
# pipe counts from the cores' software optimization guides (SVE cores: the wider of NEON and SVE).
ARM_IMPLEMENTERS = {0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon",
                    0x4E: "NVIDIA", 0x51: "Qualcomm", 0x53: "Samsung", 0x61: "Apple", 0x6D: "Microsoft",
                    0xC0: "Ampere"}
_NEON_2x64 = (8, "2 x 64-bit FMA pipes x 2 fp32 lanes x 2")
_NEON_2x128 = (16, "2 x 128-bit NEON FMA pipes x 4 fp32 lanes x 2")
_NEON_4x128 = (32, "4 x 128-bit NEON FMA pipes x 4 fp32 lanes x 2")
ARM_CORES: dict[tuple[int, int], tuple[str, int, str]] = {
    (0x41, 0xD03): ("Cortex-A53", *_NEON_2x64),
    (0x41, 0xD04): ("Cortex-A35", 4, "1 x 64-bit FMA pipe x 2 fp32 lanes x 2"),
    (0x41, 0xD05): ("Cortex-A55", *_NEON_2x64),
    (0x41, 0xD07): ("Cortex-A57", *_NEON_2x64),
    (0x41, 0xD08): ("Cortex-A72", *_NEON_2x128),
    (0x41, 0xD09): ("Cortex-A73", *_NEON_2x128),
    (0x41, 0xD0A): ("Cortex-A75", *_NEON_2x128),
    (0x41, 0xD0B): ("Cortex-A76", *_NEON_2x128),
    (0x41, 0xD0C): ("Neoverse-N1", *_NEON_2x128),
    (0x41, 0xD0D): ("Cortex-A77", *_NEON_2x128),
    (0x41, 0xD40): ("Neoverse-V1", 32, "2 x 256-bit SVE (or 4 x 128-bit NEON) FMA pipes x 8 fp32 lanes x 2"),
    (0x41, 0xD41): ("Cortex-A78", *_NEON_2x128),
    (0x41, 0xD44): ("Cortex-X1", *_NEON_4x128),
    (0x41, 0xD46): ("Cortex-A510", *_NEON_2x64),
    (0x41, 0xD47): ("Cortex-A710", *_NEON_2x128),
    (0x41, 0xD48): ("Cortex-X2", *_NEON_4x128),
    (0x41, 0xD49): ("Neoverse-N2", 16, "2 x 128-bit SVE2/NEON FMA pipes x 4 fp32 lanes x 2"),
    (0x41, 0xD4A): ("Neoverse-E1", *_NEON_2x64),
    (0x41, 0xD4B): ("Cortex-A78C", *_NEON_2x128),
    (0x41, 0xD4D): ("Cortex-A715", *_NEON_2x128),
    (0x41, 0xD4E): ("Cortex-X3", *_NEON_4x128),
    (0x41, 0xD4F): ("Neoverse-V2", 32, "4 x 128-bit SVE2/NEON FMA pipes x 4 fp32 lanes x 2"),
    (0x41, 0xD80): ("Cortex-A520", *_NEON_2x64),
    (0x41, 0xD81): ("Cortex-A720", *_NEON_2x128),
    (0x41, 0xD82): ("Cortex-X4", *_NEON_4x128),
    (0x41, 0xD84): ("Neoverse-V3", 32, "4 x 128-bit SVE2/NEON FMA pipes x 4 fp32 lanes x 2"),
    (0x41, 0xD8E): ("Neoverse-N3", 16, "2 x 128-bit SVE2/NEON FMA pipes x 4 fp32 lanes x 2"),
    (0x46, 0x001): ("A64FX", 64, "2 x 512-bit SVE FMA pipes x 16 fp32 lanes x 2"),
    (0x48, 0xD01): ("TaiShan-v110", *_NEON_2x128),
    (0x4E, 0x004): ("Carmel", *_NEON_2x128),
    (0xC0, 0xAC3): ("AmpereOne", *_NEON_2x128),
}

_MAC_SYSCTL_FLAGS = {
    "hw.optional.neon": "neon", "hw.optional.arm.FEAT_DotProd": "dotprod", "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.arm.FEAT_FP16": "fp16", "hw.optional.avx2_0": "avx2", "hw.optional.fma": "fma",
    "hw.optional.avx1_0": "avx", "hw.optional.avx512f": "avx512f",
}


@dataclass
class PeakEstimate:
    gflops: float
    cores: int
    ghz: float
    flops_per_cycle: int
    basis: str  # why this many FLOPs/cycle

    def formula(self) -> str:
        return (
            f"fp32 peak = {self.cores} cores x {self.ghz:.2f} GHz x {self.flops_per_cycle} FLOP/cycle "
            f"({self.basis}) = {self.gflops:.1f} GFLOP/s"
        )


@dataclass
class DeviceInfo:
    cpu: str
    vendor: str
    arch: str
    physical_cores: int
    logical_cores: int
    usable_cores: int  # what this process may run on (affinity / container limits)
    ghz: float | None
    ghz_source: str
    isa: list[str]
    os: str
    python: str
    versions: dict[str, str] = field(default_factory=dict)
    flops_per_cycle: int = 0
    flops_basis: str = ""
    board: str = ""  # what the firmware names the machine ("Raspberry Pi 4 Model B"), when it says
    core_types: dict[str, int] = field(default_factory=dict)  # Arm: core name -> count (big.LITTLE has two)

    @property
    def slug(self) -> str:
        """Folder-friendly name: benchmarks/results/<slug>/<date>.json."""
        name = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*", "", self.cpu.lower())
        name = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "cpu"
        # The widest vector ISA is part of the name: one CPU brand string ("AMD EPYC") covers
        # AVX2-only and AVX-512 + VNNI parts whose int8 results differ completely.
        isa = set(self.isa)
        vector = next((tag for tag, flags in (("avx512vnni", {"avx512_vnni", "avx512vnni"}),
                                               ("avx512", {"avx512f"}), ("avxvnni", {"avx_vnni", "avxvnni"}),
                                               ("avx2", {"avx2"}), ("sve", {"sve"}), ("dotprod", {"dotprod", "asimddp"}),
                                               ("neon", {"neon", "asimd"})) if isa & flags), None)
        return "-".join(filter(None, [name, f"{self.physical_cores}c", self.arch.lower(), vector, sys.platform]))

    def peak(self, threads: int | None = None) -> PeakEstimate | None:
        """fp32 peak of ``threads`` cores (all usable cores when None); None if the clock is unknown."""
        if not self.ghz or not self.flops_per_cycle:
            return None
        cores = min(threads or self.usable_cores, self.usable_cores)
        return PeakEstimate(cores * self.ghz * self.flops_per_cycle, cores, self.ghz, self.flops_per_cycle,
                            self.flops_basis)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["slug"] = self.slug
        peak = self.peak()
        out["fp32_peak_gflops"] = peak.gflops if peak else None
        out["fp32_peak_formula"] = peak.formula() if peak else "unknown: CPU clock not readable"
        return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _midr_value(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def arm_core(implementer: int | None, part: int | None) -> tuple[str, int, str] | None:
    """(name, fp32 FLOPs/cycle, basis) of an Arm core from its MIDR fields; None if not in ARM_CORES."""
    if implementer is None or part is None:
        return None
    return ARM_CORES.get((implementer, part))


@dataclass
class CpuInfo:
    """What /proc/cpuinfo says, on x86 and Arm."""

    model: str = ""
    vendor: str = ""
    board: str = ""
    flags: set[str] = field(default_factory=set)
    midrs: list[tuple[int | None, int | None]] = field(default_factory=list)  # per processor, Arm only

    def core_types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for implementer, part in self.midrs:
            core = arm_core(implementer, part)
            if core:
                name = core[0]
            else:
                maker = ARM_IMPLEMENTERS.get(implementer, f"implementer {implementer:#x}" if implementer else "Arm")
                name = f"{maker} part {part:#x}" if part is not None else maker
            counts[name] = counts.get(name, 0) + 1
        return counts

    def fastest_arm_core(self) -> tuple[str, int, str] | None:
        known = [arm_core(i, p) for i, p in self.midrs if arm_core(i, p)]
        return max(known, key=lambda c: c[1]) if known else None


def parse_cpuinfo(text: str) -> CpuInfo:
    """/proc/cpuinfo text -> CpuInfo. Arm kernels print no model name: the core comes from the MIDR."""
    info = CpuInfo()
    implementer = part = None
    seen_processor = False
    for line in text.splitlines() + ["processor : end"]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            if seen_processor and (implementer is not None or part is not None):
                info.midrs.append((implementer, part))
            implementer = part = None
            seen_processor = True
        elif key == "model name" and not info.model:
            info.model = value
        elif key == "Model":
            info.board = value  # Raspberry Pi OS names the board here...
        elif key == "Hardware" and not info.board:
            info.board = value  # ...older Arm kernels only name the SoC
        elif key == "vendor_id" and not info.vendor:
            info.vendor = value
        elif key == "CPU implementer":
            implementer = _midr_value(value)
        elif key == "CPU part":
            part = _midr_value(value)
        elif key in ("flags", "Features") and not info.flags:
            info.flags = {_LINUX_FLAG_ALIASES[f] for f in value.split() if f in _LINUX_FLAG_ALIASES}
    if info.midrs:
        first = info.midrs[0][0]
        info.vendor = info.vendor or (f"{ARM_IMPLEMENTERS.get(first, 'unknown')} ({first:#x})" if first else "")
        types = info.core_types()
        maker = ARM_IMPLEMENTERS.get(first, "") if first else ""
        # One core type: "ARM Cortex-A72"; big.LITTLE: "ARM Cortex-A76 x4 + Cortex-A55 x4".
        name = next(iter(types)) if len(types) == 1 else " + ".join(f"{n} x{c}" for n, c in types.items())
        if not name.startswith(maker):
            name = f"{maker} {name}".strip()
        info.model = info.model if info.model and "ARMv" not in info.model else name
    return info


def _linux_ghz() -> tuple[float | None, str]:
    # The highest clock the kernel reports over all cores (cpu0 is a LITTLE core on big.LITTLE):
    # peak assumes every core at full clock. Arm prints no "cpu MHz": no cpufreq means unknown.
    khz = [int(t) for t in (_read(str(p)).strip() for p in
                            Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq")) if t.isdigit()]
    if khz and max(khz) > 0:
        return max(khz) / 1e6, "cpufreq max"
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _read("/proc/cpuinfo"), re.M)]
    if mhz:
        return max(mhz) / 1000, "/proc/cpuinfo cpu MHz"
    return None, "unknown"


def _flops_per_cycle(arch: str, vendor: str, cpu: str, isa: set[str],
                     arm: tuple[str, int, str] | None = None) -> tuple[int, str]:
    """fp32 FLOPs per cycle per core: vector lanes x 2 (FMA) x FMA pipes (per core type on Arm)."""
    arch = arch.lower()
    if arm:
        return arm[1], f"{arm[0]}: {arm[2]}"
    if arch in ("arm64", "aarch64") or "neon" in isa:
        if "apple" in cpu.lower():
            return 32, "Apple M: 4 NEON FMA pipes x 4 fp32 lanes x 2"
        return 16, "unknown Arm core: assumed 2 x 128-bit NEON FMA pipes x 4 fp32 lanes x 2"
    if "avx512f" in isa:
        if "amd" in vendor.lower() or "amd" in cpu.lower():
            return 32, "AVX-512 on AMD: assumed 2 x 256-bit FMA pipes x 8 fp32 lanes x 2"
        return 64, "AVX-512: assumed 2 FMA pipes x 16 fp32 lanes x 2"
    if "avx2" in isa and "fma" in isa:
        return 32, "AVX2+FMA: 2 FMA pipes x 8 fp32 lanes x 2"
    if "avx" in isa:
        return 16, "AVX: 8-lane add + 8-lane multiply per cycle"
    if arch in ("x86_64", "amd64", "i686", "x86"):
        return 8, "SSE: 4-lane add + 4-lane multiply per cycle"
    return 0, "unknown ISA"


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "edgecls" not in versions:
        from edgecls import __version__

        versions["edgecls"] = __version__
    return versions


@lru_cache(maxsize=1)
def describe_device() -> DeviceInfo:
    arch = platform.machine() or "unknown"
    cpu, vendor, isa, ghz, ghz_source = "", "", set(), None, "unknown"
    cpuinfo = CpuInfo()
    if sys.platform.startswith("linux"):
        cpuinfo = parse_cpuinfo(_read("/proc/cpuinfo"))
        cpu, vendor, isa = cpuinfo.model or platform.processor() or platform.machine(), cpuinfo.vendor, cpuinfo.flags
        ghz, ghz_source = _linux_ghz()
    elif sys.platform == "darwin":
        cpu = _sysctl("machdep.cpu.brand_string") or platform.processor()
        vendor = "Apple" if "apple" in cpu.lower() else _sysctl("machdep.cpu.vendor")
        isa = {flag for key, flag in _MAC_SYSCTL_FLAGS.items() if _sysctl(key) == "1"}
        hz = _sysctl("hw.cpufrequency_max") or _sysctl("hw.cpufrequency")
        if hz.isdigit():
            ghz, ghz_source = int(hz) / 1e9, "sysctl hw.cpufrequency"
        elif "apple" in cpu.lower():
            # Apple silicon hides its clock; P-cores of M1-M4 run at 3.2-4.5 GHz.
            ghz, ghz_source = 3.2, "assumed 3.2 GHz (Apple silicon does not report its clock)"
    if not cpu or not isa or ghz is None:
        try:  # py-cpuinfo knows Windows and odd platforms; slow (it may spawn a process), so last.
            import cpuinfo as py_cpuinfo  # not `cpuinfo`: that name holds this machine's CpuInfo below

            info = py_cpuinfo.get_cpu_info()
            cpu = cpu or info.get("brand_raw", "")
            vendor = vendor or info.get("vendor_id_raw", "")
            if not isa:
                isa = {_LINUX_FLAG_ALIASES[f] for f in info.get("flags", []) if f in _LINUX_FLAG_ALIASES}
            if ghz is None and info.get("hz_advertised"):
                ghz, ghz_source = info["hz_advertised"][0] / 1e9, "py-cpuinfo advertised"
        except Exception:  # noqa: BLE001 - a description with gaps beats no benchmark
            pass
    logical = os.cpu_count() or 1
    physical = logical
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or logical
        if ghz is None:
            freq = psutil.cpu_freq()
            if freq and (freq.max or freq.current):
                ghz, ghz_source = (freq.max or freq.current) / 1000, "psutil cpu_freq"
    except ImportError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = logical
    return _assemble(cpu, vendor, arch, isa, ghz, ghz_source, physical, logical, usable, cpuinfo)


def device_from_cpuinfo(text: str, arch: str = "aarch64", ghz: float | None = None, ghz_source: str = "unknown",
                        usable: int | None = None) -> DeviceInfo:
    """The record a Linux machine with this /proc/cpuinfo would give (cores = its processors)."""
    info = parse_cpuinfo(text)
    cores = max(1, text.count("\nprocessor") + text.startswith("processor"))
    return _assemble(info.model, info.vendor, arch, info.flags, ghz, ghz_source, cores, cores, usable or cores, info)


def _assemble(cpu: str, vendor: str, arch: str, isa: set[str], ghz: float | None, ghz_source: str, physical: int,
              logical: int, usable: int, cpuinfo: CpuInfo) -> DeviceInfo:
    # Peak counts physical cores: SMT siblings share the FMA pipes.
    usable = min(usable, physical)
    arm = cpuinfo.fastest_arm_core()
    flops, basis = _flops_per_cycle(arch, vendor, cpu, isa, arm)
    if arm and len(cpuinfo.core_types()) > 1:
        basis += " (the fastest core type, for every core)"
    return DeviceInfo(
        cpu=cpu or "unknown CPU",
        vendor=vendor,
        arch=arch,
        physical_cores=physical,
        logical_cores=logical,
        usable_cores=usable,
        ghz=round(ghz, 3) if ghz else None,
        ghz_source=ghz_source,
        isa=sorted(isa, key=ISA_FLAGS.index),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        versions=_package_versions(),
        flops_per_cycle=flops,
        flops_basis=basis,
        board=cpuinfo.board,
        core_types=cpuinfo.core_types(),
    )
