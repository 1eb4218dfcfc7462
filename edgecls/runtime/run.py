"""Run an artifact over a batch of images: the one loop that parity, evaluation and prediction share."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_batches(runner, inputs: np.ndarray, batch: int | None = None) -> np.ndarray:
    """Logits of an open ``runner`` for NCHW ``inputs`` (callers that stream data keep one runner open).

    Inputs are transposed to the artifact's layout and fed in its static batch size (padding the
    last batch by repeating inputs, whose extra outputs are dropped).
    """
    spec = runner.input_spec
    x = inputs.transpose(0, 2, 3, 1) if spec.layout == "NHWC" else inputs
    static = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) else None
    step = static or batch or 1
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start:start + step]
        real = len(chunk)
        if static and real < static:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static - real, axis=0)])
        outputs.append(np.asarray(runner.run(chunk)).reshape(len(chunk), -1)[:real])
    return np.concatenate(outputs)


def describe_runner(runner) -> dict:
    spec = runner.input_spec
    return {"runtime": runner.runtime, "runtime_version": runner.version(),
            "execution_precision": runner.execution_precision,
            "input": {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "layout": spec.layout}}


def open_verified(path, threads: int | None = None, verify: bool = True):
    """A runner for ``path``; an artifact listed in the manifest of its folder is checked against
    its sha256 first, unless ``verify`` is False."""
    from edgecls.manifest import verify_artifact
    from edgecls.runtime.registry import open_runner

    if verify:
        verify_artifact(Path(path))
    return open_runner(path, threads=threads)


def run_artifact(path, inputs: np.ndarray, batch: int | None = None, threads: int | None = None,
                 verify: bool = True) -> tuple[np.ndarray, dict]:
    """Logits of the artifact at ``path`` for NCHW ``inputs``, and what its runner reports about it
    (see run_batches and open_verified)."""
    runner = open_verified(path, threads=threads, verify=verify)
    return run_batches(runner, inputs, batch), describe_runner(runner)


def describe_artifact(payload: dict) -> dict:
    """What the runtime says about an artifact file: input, version, MACs counted from its graph.

    Run through edgecls.isolation by ``edgecls info FILE``, so a runtime that crashes on a file
    gives one line instead of killing the command."""
    from edgecls.errors import EdgeclsError
    from edgecls.runtime.graph import count_artifact_macs
    from edgecls.runtime.registry import open_runner

    path = Path(payload["path"])
    runner = open_runner(path)
    data: dict = describe_runner(runner)
    try:
        counted = count_artifact_macs(path, batch=1, resolution=payload.get("resolution"))
        data.update(macs=counted.macs_per_image, macs_by_op=counted.by_op, macs_complete=counted.complete)
    except EdgeclsError as exc:
        data.update(macs=None, macs_error=str(exc))
    return data


__all__ = ["describe_artifact", "describe_runner", "open_verified", "run_artifact", "run_batches"]
