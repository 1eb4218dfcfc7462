"""edgecls' own model definitions, one file per family, and the functions to build them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecls.errors import InvalidArgumentError
from edgecls.models.registry import (
    ALIASES,
    ModelInfo,
    all_model_infos,
    get_model_info,
    list_models,
    register_model,
    resolve_name,
)

__all__ = [
    "ALIASES",
    "ModelInfo",
    "all_model_infos",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
    "resolve_name",
]


def create_model(
    name: str,
    num_classes: int | None = None,
    *,
    weights: Any = None,
    pretrained: bool = False,
    head_hidden: int | None = None,
    resolution: int | None = None,
    **kwargs: Any,
):
    """Build a registered model in eval mode.

    ``weights`` is a checkpoint path (.pth/.pt/.safetensors) or a state dict in any supported
    layout; ``pretrained=True`` loads the built-in weights where the model has them.
    ``num_classes`` defaults to the model's (1000), or to a ``train`` checkpoint's class count, whose
    head (``head_hidden``: a hidden layer before the classifier) is rebuilt from its metadata too.
    """
    info = get_model_info(name)
    if isinstance(weights, (str, Path)):
        from edgecls.datasets import checkpoint_metadata

        trained = checkpoint_metadata(weights)
        if trained is not None:
            num_classes = int(trained["num_classes"]) if num_classes is None else num_classes
            head_hidden = trained.get("head_hidden") if head_hidden is None else head_hidden
    num_classes = info.num_classes if num_classes is None else num_classes
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise InvalidArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
    if pretrained and weights is not None:
        raise InvalidArgumentError("give either weights=... or pretrained=True, not both")
    if resolution is not None:
        resolution = info.check_resolution(resolution)
        if info.sized_at_build:
            kwargs["img_size"] = resolution
    try:
        model = info.builder(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        # A builder fixes its architecture by name (width, depth): extra options are user errors.
        if "argument" not in str(exc):
            raise
        raise InvalidArgumentError(
            f"{info.name} does not take {', '.join(map(repr, kwargs))}: the name fixes the architecture"
        ) from None
    if head_hidden:
        from edgecls.models.head import replace_head

        replace_head(model, num_classes, hidden=int(head_hidden))
    model.edgecls_info = info  # lets exporters and profilers find the metadata from the module
    if pretrained:
        if info.pretrained is None:
            with_weights = [i.name for i in all_model_infos() if i.pretrained is not None]
            raise InvalidArgumentError(
                f"{info.name} has no built-in pretrained weights (available: {', '.join(with_weights) or 'none'}); "
                "pass weights=PATH instead"
            )
        if num_classes != info.num_classes:
            raise InvalidArgumentError(
                f"built-in weights of {info.name} have {info.num_classes} classes, not {num_classes}"
            )
        weights = info.pretrained()
    if weights is not None:
        from edgecls.weights import load_weights

        load_weights(model, weights)
    return model.eval()
