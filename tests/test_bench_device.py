"""Device description and the fp32 peak formula."""

from __future__ import annotations

import sys

import pytest

from edgecls.bench.device import DeviceInfo, _flops_per_cycle, describe_device


def test_describe_this_machine():
    device = describe_device()
    data = device.to_dict()
    assert device.physical_cores >= 1 and 1 <= device.usable_cores <= device.physical_cores
    assert data["python"] and data["os"] and data["slug"]
    assert "/" not in device.slug and " " not in device.slug
    assert "numpy" in data["versions"] and "edgecls" in data["versions"]
    if device.ghz:
        assert "GFLOP/s" in data["fp32_peak_formula"]


@pytest.mark.parametrize("arch, vendor, cpu, isa, flops", [
    ("x86_64", "GenuineIntel", "Intel Xeon", {"avx2", "fma", "avx512f"}, 64),
    ("x86_64", "AuthenticAMD", "AMD EPYC 9654", {"avx2", "fma", "avx512f"}, 32),
    ("x86_64", "AuthenticAMD", "AMD EPYC", {"avx", "avx2", "fma"}, 32),
    ("x86_64", "GenuineIntel", "Intel Core", {"avx"}, 16),
    ("x86_64", "", "old", set(), 8),
    ("aarch64", "0x41", "Cortex-A76", {"neon", "dotprod"}, 16),
    ("arm64", "Apple", "Apple M2", {"neon"}, 32),
])
def test_flops_per_cycle(arch, vendor, cpu, isa, flops):
    assert _flops_per_cycle(arch, vendor, cpu, isa)[0] == flops


def test_peak_formula_arithmetic():
    device = DeviceInfo(cpu="Test CPU @ 2.00GHz", vendor="x", arch="x86_64", physical_cores=4, logical_cores=8,
                        usable_cores=4, ghz=2.5, ghz_source="test", isa=["avx2", "fma"], os="Linux", python="3.11",
                        flops_per_cycle=32, flops_basis="AVX2+FMA")
    assert device.peak().gflops == pytest.approx(4 * 2.5 * 32)
    one = device.peak(1)
    assert one.gflops == pytest.approx(80.0) and one.cores == 1
    assert one.formula() == "fp32 peak = 1 cores x 2.50 GHz x 32 FLOP/cycle (AVX2+FMA) = 80.0 GFLOP/s"
    assert device.peak(16).cores == 4  # never more cores than the machine has
    assert device.slug == f"test-4c-x86_64-avx2-{sys.platform}"  # the vector ISA tells CPUs of one brand apart
    unknown = DeviceInfo(cpu="x", vendor="", arch="x86_64", physical_cores=1, logical_cores=1, usable_cores=1,
                         ghz=None, ghz_source="unknown", isa=[], os="", python="")
    assert unknown.peak() is None and "unknown" in unknown.to_dict()["fp32_peak_formula"]
