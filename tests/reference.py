"""Reference data for fidelity tests (copied from the workplace's shared/reference; see data/README.md).

``reference_state`` fills a reference network's state-dict layout by the deterministic rule of
data/README.md, so loading it into an edgecls model and running ``reference_input`` must give the
reference network's logits.
"""

from __future__ import annotations

import contextlib
import functools
import json
import zlib
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"


def _models_of(file: str):
    """A cached loader of the "models" table of ``data/<file>``."""
    return functools.cache(lambda: json.loads((DATA / file).read_text())["models"])


reference_layouts = _models_of("reference_state_dicts.json")
reference_outputs = _models_of("reference_outputs.json")
# Float64 golden logits of every torchvision/timm entry (not Mobile-Former): machine-independent.
reference_outputs_f64 = _models_of("reference_outputs_f64.json")
# The seed's other families (DenseNet ... CvT): layouts, counts and float64 golden logits.
seed_models = _models_of("seed_models.json")


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's intra-op threads set to ``count`` for the block, restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def counted_reference_model(ref: str, entry: dict, name: str):
    """(edgecls model ``name`` holding the reference ``ref``'s filled state, the layout it loaded as),
    after checking its parameter count against the reference entry's."""
    import edgecls

    model = edgecls.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == entry["num_params"]
    return model, edgecls.load_weights(model, reference_state(ref))


def reference_state(ref_name: str) -> dict:
    import torch

    entry = seed_models()[ref_name] if ref_name in seed_models() else reference_layouts()[ref_name]
    state = {}
    for key, shape, dtype in entry["state_dict"]:
        n = int(np.prod(shape)) if shape else 1
        if not dtype.startswith("float"):
            state[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
            continue
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        if len(shape) >= 2:
            values = rng.normal(0, np.sqrt(2 / int(np.prod(shape[1:]))), n)
        elif key.endswith("running_var") or key.endswith("weight"):
            values = rng.uniform(0.5, 1.5, n)
        else:
            values = rng.normal(0, 0.1, n)
        state[key] = torch.from_numpy(values.astype(np.float32).reshape(shape))
    return state


def reference_input(resolution: int):
    import torch

    x = np.random.default_rng(0).standard_normal((1, 3, resolution, resolution)).astype(np.float32)
    return torch.from_numpy(x)


def mapped_references(seed: bool = False) -> list[tuple[str, str]]:
    """(reference name, edgecls name) for every reference entry an edgecls model claims: those of
    reference_state_dicts.json, or with ``seed`` those of seed_models.json (tested in float64)."""
    from edgecls.models import all_model_infos

    pairs = [(ref, info.name) for info in all_model_infos() for ref in info.references]
    missing = [ref for ref, _ in pairs if ref not in reference_layouts() and ref not in seed_models()]
    assert not missing, f"registry names references that tests/data lacks: {missing}"
    return sorted((ref, name) for ref, name in pairs if (ref in seed_models()) == seed)
