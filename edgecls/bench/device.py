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
             "amx", "neon", "dotprod", "i8mm", "sve", "fp16")

_LINUX_FLAG_ALIASES = {
    # x86 /proc/cpuinfo "flags"
    "sse4_2": "sse4_2", "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni", "avx512vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16", "amx_tile": "amx",
    # arm64 /proc/cpuinfo "Features"
    "asimd": "neon", "neon": "neon", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve", "asimdhp": "fp16",
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
                                               ("avx2", {"avx2"}), ("dotprod", {"dotprod", "asimddp"}),
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


def _linux_cpu() -> tuple[str, str, set[str]]:
    text = _read("/proc/cpuinfo")
    model = vendor = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "Hardware") and not model:
            model = value
        elif key in ("vendor_id", "CPU implementer") and not vendor:
            vendor = value
        elif key in ("flags", "Features") and not flags:
            flags = {_LINUX_FLAG_ALIASES[f] for f in value.split() if f in _LINUX_FLAG_ALIASES}
    if not model:
        model = platform.processor() or platform.machine()
    return model, vendor, flags


def _linux_ghz() -> tuple[float | None, str]:
    # The highest clock the kernel reports: peak assumes every core at full clock.
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    if max_khz.isdigit() and int(max_khz) > 0:
        return int(max_khz) / 1e6, "cpufreq max"
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _read("/proc/cpuinfo"), re.M)]
    if mhz:
        return max(mhz) / 1000, "/proc/cpuinfo cpu MHz"
    return None, "unknown"


def _flops_per_cycle(arch: str, vendor: str, cpu: str, isa: set[str]) -> tuple[int, str]:
    """fp32 FLOPs per cycle per core: vector lanes x 2 (FMA) x assumed FMA pipes."""
    arch = arch.lower()
    if arch in ("arm64", "aarch64") or "neon" in isa:
        if "apple" in cpu.lower():
            return 32, "Apple M: 4 NEON FMA pipes x 4 fp32 lanes x 2"
        return 16, "NEON: assumed 2 FMA pipes x 4 fp32 lanes x 2"
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
    if sys.platform.startswith("linux"):
        cpu, vendor, isa = _linux_cpu()
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
            import cpuinfo

            info = cpuinfo.get_cpu_info()
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
    # Peak counts physical cores: SMT siblings share the FMA pipes.
    usable = min(usable, physical)
    flops, basis = _flops_per_cycle(arch, vendor, cpu, isa)
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
    )
