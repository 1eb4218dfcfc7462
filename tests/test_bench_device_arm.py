"""Arm device records from /proc/cpuinfo: core names from the MIDR, flags, peak per core type, slug.

The texts in tests/data/cpuinfo are what Linux arm64 prints (arch/arm64/kernel/cpuinfo.c) for the
part numbers Arm documents in each core's technical reference manual (MIDR_EL1 PartNum:
Cortex-A53 0xD03, A55 0xD05, A72 0xD08, A76 0xD0B, Neoverse-N1 0xD0C, V1 0xD40, N2 0xD49, V2
0xD4F; implementer 0x41 = Arm). The expected FLOPs/cycle are each core's FMA pipes x fp32 lanes x
2 from the cores' software optimization guides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecls.bench.device import device_from_cpuinfo, parse_cpuinfo

DATA = Path(__file__).parent / "data" / "cpuinfo"


@pytest.mark.parametrize("name, cpu, cores, flops, isa, absent, board", [
    ("rpi3_cortex_a53.txt", "ARM Cortex-A53", {"Cortex-A53": 4}, 8, {"neon"}, {"dotprod", "fp16"},
     "Raspberry Pi 3 Model B Rev 1.2"),
    ("rpi4_cortex_a72.txt", "ARM Cortex-A72", {"Cortex-A72": 4}, 16, {"neon"}, {"dotprod", "sve"},
     "Raspberry Pi 4 Model B Rev 1.4"),
    ("rk3588_a76_a55.txt", "ARM Cortex-A55 x4 + Cortex-A76 x4", {"Cortex-A55": 4, "Cortex-A76": 4}, 16,
     {"neon", "dotprod", "fp16"}, {"i8mm", "sve"}, ""),
    ("graviton2_neoverse_n1.txt", "ARM Neoverse-N1", {"Neoverse-N1": 2}, 16, {"neon", "dotprod", "fp16"},
     {"i8mm", "bf16", "sve"}, ""),
    ("graviton3_neoverse_v1.txt", "ARM Neoverse-V1", {"Neoverse-V1": 2}, 32,
     {"neon", "dotprod", "i8mm", "bf16", "sve", "fp16"}, {"sve2"}, ""),
    ("cobalt100_neoverse_n2.txt", "ARM Neoverse-N2", {"Neoverse-N2": 4}, 16,
     {"neon", "dotprod", "i8mm", "bf16", "sve", "sve2"}, set(), ""),
    ("graviton4_neoverse_v2.txt", "ARM Neoverse-V2", {"Neoverse-V2": 2}, 32,
     {"neon", "dotprod", "i8mm", "bf16", "sve", "sve2"}, set(), ""),
])
def test_arm_cores_from_midr(name, cpu, cores, flops, isa, absent, board):
    text = (DATA / name).read_text()
    device = device_from_cpuinfo(text, ghz=2.0, ghz_source="cpufreq max")
    assert device.cpu == cpu
    assert device.core_types == cores
    assert device.vendor == "ARM (0x41)"
    assert device.board == board
    assert isa <= set(device.isa) and not (absent & set(device.isa))
    assert device.flops_per_cycle == flops
    n = sum(cores.values())
    peak = device.peak()
    assert peak.gflops == pytest.approx(n * 2.0 * flops)
    assert f"{flops} FLOP/cycle" in peak.formula()
    # The slug names the core, so a Pi 4 and a Graviton 2 never share a results folder.
    core_slug = next(iter(cores)).lower()
    assert core_slug in device.slug and device.slug.endswith(("-neon-linux", "-dotprod-linux", "-sve-linux"))
    assert f"-{n}c-aarch64-" in device.slug


def test_big_little_peak_uses_the_big_cores_and_says_so():
    device = device_from_cpuinfo((DATA / "rk3588_a76_a55.txt").read_text(), ghz=2.4)
    assert "Cortex-A76" in device.flops_basis and "fastest core type" in device.flops_basis
    assert device.peak(threads=4).gflops == pytest.approx(4 * 2.4 * 16)


def test_unknown_clock_means_no_peak():
    device = device_from_cpuinfo((DATA / "rpi4_cortex_a72.txt").read_text(), ghz=None)
    assert device.ghz is None and device.peak() is None
    assert device.to_dict()["fp32_peak_formula"].startswith("unknown")


def test_unknown_part_is_named_by_its_number_and_assumes_neon():
    device = device_from_cpuinfo((DATA / "unknown_part.txt").read_text(), ghz=1.0)
    assert device.cpu == "ARM part 0xdff"
    assert device.flops_per_cycle == 16 and "assumed" in device.flops_basis


def test_x86_cpuinfo_is_unchanged():
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx avx2 fma\n\n"
    info = parse_cpuinfo(text)
    assert info.model == "AMD EPYC 7B13" and info.vendor == "AuthenticAMD" and info.midrs == []
    assert {"avx2", "fma"} <= info.flags
