"""Model registry: names, metadata and builders.

Family modules register their builders with ``@register_model(...)``; this module itself imports
no torch, so metadata can be listed cheaply and errors can be raised before anything heavy loads.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from edgecls.errors import InvalidArgumentError, MissingDependencyError, UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

# One line per family module: adding a family means adding its file and its line here.
FAMILY_MODULES = (
    "edgecls.models.squeezenet",
    "edgecls.models.mobilenetv1",
    "edgecls.models.mobilenetv2",
    "edgecls.models.mobilenetv3",
    "edgecls.models.mobilenetv4",
    "edgecls.models.efficientnet",
    "edgecls.models.mobileformer",
    "edgecls.models.mobilevit",
    "edgecls.models.densenet",
    "edgecls.models.convnext",
    "edgecls.models.vit",
    "edgecls.models.mixer",
    "edgecls.models.swin",
    "edgecls.models.cvt",
)

# Short names for the CLI.
ALIASES = {
    "mobilenetv1": "mobilenetv1_100",
    "mobilenetv2": "mobilenetv2_100",
    "mobilenetv3": "mobilenetv3_large_100",
    "mobilenetv4": "mobilenetv4_conv_small",
    "squeezenet": "squeezenet1_1",
    "efficientnet": "efficientnet_b0",
    "efficientnet_lite": "tf_efficientnet_lite0",
    "mobileformer": "mobileformer_294m",
    "mobilevitv2": "mobilevitv2_100",
    "mobilevit": "mobilevit_s",
}


@dataclass(frozen=True)
class ModelInfo:
    """What a user needs to know to feed and compare a model."""

    name: str
    family: str
    builder: Callable[..., Any] = field(repr=False, compare=False)
    resolution: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    # Reference implementations with the same network, as "<library>:<name>"
    # (keys of tests/data/reference_state_dicts.json or tests/data/seed_models.json).
    references: tuple[str, ...] = ()
    top1: float | None = None  # published ImageNet-1k top-1 (%), for the reference weights
    paper_madds: float | None = None  # multiply-adds (millions) as the paper's table states
    # Input sides must be a multiple of this and at least min_resolution.
    resolution_multiple: int = 1
    min_resolution: int = 32
    max_resolution: int | None = None  # token-mixing MLPs (MLP-Mixer) fix the number of patches
    # The builder takes ``img_size``: position embeddings or attention masks are made for one input
    # size (ViT, Swin), so create_model(..., resolution=R) builds the model for R.
    sized_at_build: bool = False
    # Returns the path of built-in pretrained weights (shipped by an installed package), or None.
    pretrained: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    num_classes: int = 1000

    def check_resolution(self, resolution: int) -> int:
        if not isinstance(resolution, int) or isinstance(resolution, bool):
            raise InvalidArgumentError(f"resolution must be an integer, got {resolution!r}")
        if resolution < self.min_resolution:
            raise InvalidArgumentError(
                f"resolution {resolution} is too small for {self.name}: use at least {self.min_resolution}"
            )
        if self.max_resolution is not None and resolution > self.max_resolution:
            raise InvalidArgumentError(
                f"resolution {resolution} is too large for {self.name}: use at most {self.max_resolution}"
            )
        if resolution % self.resolution_multiple:
            raise InvalidArgumentError(
                f"resolution {resolution} does not suit {self.name}: use a multiple of "
                f"{self.resolution_multiple} (native {self.resolution})"
            )
        return resolution


_REGISTRY: dict[str, ModelInfo] = {}
_loaded = False


def _add(name: str, module: str, builder: Callable[..., Any], meta: dict[str, Any]) -> None:
    if name in _REGISTRY:
        raise RuntimeError(f"model {name} registered twice")
    _REGISTRY[name] = ModelInfo(name=name, family=module.rsplit(".", 1)[-1], builder=builder, **meta)


def register_model(**meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated builder under its function name, with ``meta`` as ModelInfo fields."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        _add(builder.__name__, builder.__module__, builder, meta)
        return builder

    return wrap


def register_variant(name: str, build: Callable[..., Any], *args: Any, **meta: Any) -> None:
    """Register ``name`` as ``build(*args, num_classes=..., **options)``, with ``meta`` as ModelInfo
    fields: one call per row of a family's table of sizes (its family is ``build``'s module)."""
    _add(name, build.__module__, functools.partial(build, *args), meta)


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    for module in FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A runtime-only install has no torch: every command that needs a model says what to install.
            if exc.name == "torch" or (exc.name or "").startswith("torch."):
                raise MissingDependencyError(
                    "models need PyTorch, which this install lacks: pip install 'edgecls[export]'"
                ) from None
            # A family file not written yet is simply absent; any other missing dependency is a bug.
            if exc.name != module:
                raise
    _loaded = True


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is an fnmatch filter such as ``"mobilenet*"``."""
    import fnmatch

    _load_families()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def resolve_name(name: str) -> str:
    """Canonical model name for ``name`` (aliases accepted), or UnknownModelError with suggestions."""
    _load_families()
    if not isinstance(name, str) or not name:
        raise UnknownModelError("a model name is required: run `edgecls models` to list them")
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key in _REGISTRY:
        return key
    candidates = sorted(_REGISTRY) + sorted(ALIASES)
    close = difflib.get_close_matches(key, candidates, n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "run `edgecls models` to list them"
    raise UnknownModelError(f"unknown model '{name}': {hint}")


def get_model_info(name: str) -> ModelInfo:
    return _REGISTRY[resolve_name(name)]


def all_model_infos() -> list[ModelInfo]:
    _load_families()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]
