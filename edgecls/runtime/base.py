"""The one interface every runtime implements.

A runtime module (``edgecls/runtime/<runtime>.py``) defines one ``Runner`` subclass and is listed in
``edgecls.runtime.registry.RUNTIME_MODULES``; which format it opens is the ``runtime`` column of
``edgecls.formats.FORMATS``. Runners import their runtime inside ``__init__`` so
that listing them costs nothing and a missing runtime fails with one clear line.

Timing contract: ``prepare`` turns a float32 array into whatever the runtime consumes (layout,
dtype, quantization of an int8 input, runtime-owned buffers) once, outside the timed loop;
``infer`` is the only thing timed; ``run`` does both and returns float32 logits.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.errors import EdgeclsError, MissingDependencyError


def import_runtime(module: str, missing: str) -> Any:
    """The runtime's module, imported; MissingDependencyError(``missing``: what to install) when absent."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(missing) from None


def load_error(runtime_name: str, path: Path | str, exc: BaseException) -> EdgeclsError:
    """One line for an artifact the runtime refused: '<runtime> cannot load <path>: <its first line>'."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return EdgeclsError(f"{runtime_name} cannot load {path}: {first[:200]}")


def sidecar_of(path: Path) -> Path:
    """``<artifact>.json``: the metadata of a format with no slot for it (ExecuTorch, NCNN); the
    ``.json`` side suffix of its row in edgecls.formats."""
    return Path(str(path) + ".json")


def read_sidecar(path: Path) -> dict:
    """The sidecar of the artifact at ``path`` as written (lists and numbers as JSON values); {} when absent."""
    import json

    sidecar = sidecar_of(path)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sidecar_problem(path: Path) -> str | None:
    """One line saying why the sidecar of ``path`` cannot be used (missing, unreadable, not a JSON
    object), or None when it is fine."""
    import json

    sidecar = sidecar_of(path)
    if not sidecar.is_file():
        return (f"{Path(path).name} has no sidecar {sidecar.name} (its labels, preprocessing and input spec): "
                f"copy it from the export folder or re-export with edgecls")
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        return f"the sidecar {sidecar} is not readable JSON ({str(exc).splitlines()[0][:80]}): re-export with edgecls"
    if not isinstance(data, dict):
        return f"the sidecar {sidecar} is not a JSON object: re-export with edgecls"
    return None


def sidecar_metadata(path: Path) -> dict[str, str]:
    """The sidecar as the raw key -> string metadata every Runner.read_metadata returns."""
    import json

    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in read_sidecar(path).items()}


def cast_input(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` as the input dtype; byte values are rounded and clipped, not truncated, into a uint8 input."""
    if dtype == "uint8":
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    return x.astype(dtype, copy=False)


def cpu_flags(wanted: tuple[str, ...], cpuinfo: str | None = None) -> list[str]:
    """The flags of ``/proc/cpuinfo`` (or the ``cpuinfo`` text given; x86 "flags", Arm "Features")
    among ``wanted``. [] without them or without /proc."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return []
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            found |= set(value.split()) & set(wanted)
    return sorted(found)


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The flags of ``/proc/cpuinfo`` (or the ``cpuinfo`` text given) that mean bf16 arithmetic:
    x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16`` in "Features". [] without them or without /proc."""
    from edgecls.formats import BF16_CPU_FLAGS

    return cpu_flags(BF16_CPU_FLAGS, cpuinfo)


def cpu_fp16_flags(cpuinfo: str | None = None) -> list[str]:
    """The flags that mean native fp16 vector arithmetic (Arm ``asimdhp``, Armv8.2-A). []: none."""
    from edgecls.formats import FP16_CPU_FLAGS

    return cpu_flags(FP16_CPU_FLAGS, cpuinfo)


def execution_problem(precision: str, executed: str | None, bf16_flags: list[str]) -> str | None:
    """Why an artifact of ``precision`` did not run in it (None: it did, or nothing to check).

    ``executed`` is the precision the runtime reports after compiling (OpenVINO's
    INFERENCE_PRECISION_HINT read back) in edgecls's names; None when the runtime cannot say.
    Only an execution precision (bf16) can silently fall back: stored precisions are in the file."""
    if precision != "bf16":
        return None
    if not bf16_flags:
        return ("this CPU has no bf16 arithmetic (no avx512_bf16 / amx_bf16 / bf16 in /proc/cpuinfo); "
                f"the runtime ran {executed or 'another precision'}, so bf16 parity was not measured")
    if executed != "bf16":
        return (f"the runtime ran {executed or 'an unreported precision'}, not bf16, although the CPU has "
                f"{', '.join(bf16_flags)}; bf16 parity was not measured")
    return None


@dataclass
class InputSpec:
    name: str
    shape: tuple[int | None, ...]  # None for a dynamic dimension
    dtype: str  # numpy dtype name of the artifact's input ("float32", "float16", "int8", "uint8")
    layout: str  # "NCHW" or "NHWC"


class Runner(ABC):
    runtime: str  # a key of edgecls.runtime.registry.RUNTIME_MODULES
    package: str  # the module the runtime imports (its import is timed apart from session creation)

    @staticmethod
    def read_metadata(path: Path) -> dict[str, str]:
        """The key/value metadata edgecls stored in the artifact (raw strings; see
        edgecls.runtime.registry.read_metadata for the normalised form)."""
        return {}

    # The precision the runtime computes in, as it reports it after loading (fp32, bf16...), for
    # runtimes that can be asked; None when the runner cannot tell.
    execution_precision: str | None = None

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec: ...

    @abstractmethod
    def prepare(self, x: np.ndarray) -> Any:
        """``x``: float32 in the artifact's layout (see input_spec.layout)."""

    @abstractmethod
    def infer(self, prepared: Any) -> Any:
        """One inference; the raw runtime output."""

    @abstractmethod
    def to_float(self, raw: Any) -> np.ndarray:
        """Raw output -> float32 logits (dequantized when the output is integer)."""

    def version(self) -> str:
        return ""

    def count_macs(self) -> int | None:
        """MACs per image when the runner can count them from what it holds (the PyTorch model);
        file artifacts are counted from their graph by edgecls.runtime.graph instead."""
        return None

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.to_float(self.infer(self.prepare(np.ascontiguousarray(x, dtype=np.float32))))
