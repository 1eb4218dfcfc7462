"""Run an artifact over a batch of images: the one loop that parity, evaluation and prediction share."""

from __future__ import annotations

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
            "input": {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "layout": spec.layout}}


def run_artifact(path, inputs: np.ndarray, batch: int | None = None, threads: int | None = None) -> tuple[np.ndarray, dict]:
    """Logits of the artifact at ``path`` for NCHW ``inputs``, and what its runner reports about it."""
    from edgecls.runtime.registry import open_runner

    runner = open_runner(path, threads=threads)
    return run_batches(runner, inputs, batch), describe_runner(runner)


__all__ = ["describe_runner", "run_artifact", "run_batches"]
