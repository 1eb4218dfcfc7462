"""PyTorch eager runner: the baseline every exported artifact is compared with.

Its "artifact" is a model name (aliases accepted), optionally with a checkpoint; the model is
built by edgecls itself, so the baseline and the exports share one definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecls.runtime.base import InputSpec, Runner
from edgecls.errors import MissingDependencyError


class TorchEagerRunner(Runner):
    runtime = "torch"
    package = "torch"

    def __init__(
        self,
        path: Path | str,
        threads: int | None = None,
        *,
        weights: str | Path | None = None,
        resolution: int | None = None,
        batch: int | None = None,
    ) -> None:
        from edgecls.models import get_model_info

        # Resolve the name before importing torch: a typo should fail fast even without torch.
        self.info = get_model_info(str(path))
        try:
            import torch
        except ImportError:
            raise MissingDependencyError(
                "the PyTorch baseline needs torch: pip install 'edgecls[export]'"
            ) from None
        from edgecls.models import create_model

        super().__init__(Path(self.info.name), threads)
        self.model_name = self.info.name
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.resolution = self.info.check_resolution(resolution) if resolution else self.info.resolution
        self.weights = str(weights) if weights else None
        self.model = create_model(self.info.name, weights=weights, resolution=self.resolution)
        # An eager model takes any batch: left dynamic unless given, like a dynamic-batch artifact.
        self._spec = InputSpec("input", (batch, 3, self.resolution, self.resolution), "float32", "NCHW")

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def prepare(self, x: np.ndarray) -> Any:
        return self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def infer(self, prepared: Any) -> Any:
        # inference_mode, not no_grad: it also skips version counting, as a deployed model would.
        with self._torch.inference_mode():
            return self.model(prepared)

    def to_float(self, raw: Any) -> np.ndarray:
        return raw.detach().float().numpy()

    def version(self) -> str:
        return self._torch.__version__

    def count_macs(self) -> int | None:
        # torch's own counter: FLOPs of conv / mm / bmm / attention, 2 per multiply-add. It gives
        # the same figure as edgecls.profile (checked on squeezenet1_1, mobilenetv3_small_100,
        # mobilevitv2_050), which sits beside runtime in the layers and so cannot be used here.
        from torch.utils.flop_counter import FlopCounterMode

        x = self._torch.zeros(1, 3, self.resolution, self.resolution)
        with self._torch.inference_mode(), FlopCounterMode(display=False) as counter:
            self.model(x)
        return counter.get_total_flops() // 2


RUNNER = TorchEagerRunner
