import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    # `make test` runs two xdist workers on 2 cores: torch's default of one intra-op thread per core
    # in each worker oversubscribes them, and spin-waiting threads made single forwards 4-30x slower
    # (float64 EfficientNet B7: 12 s alone, 100-440 s in the suite). One thread per worker.
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        try:
            import torch
        except ImportError:  # the runtime-only tests import no torch
            return
        torch.set_num_threads(1)
