"""Checkpoint loading: read a file, detect its layout from the keys, convert, load strictly.

A model class lists the layouts it can read in ``checkpoint_layouts``: a dict from layout name
("timm", "torchvision", "mobileformer", ...) to a function that turns a state dict of that layout
into edgecls' own. Detection tries each converter and keeps the one whose result matches the
model's keys and shapes exactly; the edgecls layout itself is always tried first. A model built
for another input size than its checkpoint's (ViT position embeddings) defines
``adapt_checkpoint(state) -> state``, applied to every converted candidate before the comparison.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from edgecls.errors import CheckpointError

StateDict = Mapping[str, Any]
LayoutConverter = Callable[[StateDict], dict]

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "state_dict_ema", "model_ema")


def rename_layout(rules: Iterable[tuple[str, str]]) -> LayoutConverter:
    """A converter that renames each key by the first regex rule that matches it.

    Rules are ``(pattern, replacement)`` pairs for ``re.fullmatch``; keys no rule matches keep
    their name, so the strict comparison afterwards reports them.
    """
    compiled = [(re.compile(p), r) for p, r in rules]

    def convert(state_dict: StateDict) -> dict:
        out = {}
        for key, value in state_dict.items():
            for pattern, repl in compiled:
                if pattern.fullmatch(key):
                    key = pattern.sub(repl, key, count=1)
                    break
            out[key] = value
        return out

    return convert


def child_rules(theirs: str, ours: str, children: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """rename_layout rules for the children of a repeated module: ``<theirs>.<child>.<rest>`` ->
    ``<ours>.<our child>.<rest>`` per ``(child, our child)``. ``theirs`` and ``child`` are
    patterns; ``ours`` and ``our child`` refer to their groups as \\1, \\2 ... in that order."""
    prefix_groups = re.compile(theirs).groups
    return [(rf"{theirs}\.{child}\.(.+)", f"{ours}.{name}.\\g<{prefix_groups + re.compile(child).groups + 1}>")
            for child, name in children]


def read_checkpoint(source: Any) -> dict:
    """A flat state dict from a path or a (possibly wrapped) mapping."""
    import torch

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                obj: Any = load_file(str(path))
            else:
                obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt file, pickle with foreign objects, truncated download
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"cannot read checkpoint {path}: {first[:200]}") from None
    else:
        obj = source
    if hasattr(obj, "state_dict") and callable(obj.state_dict) and not isinstance(obj, Mapping):
        obj = obj.state_dict()
    for _ in range(3):  # unwrap {"state_dict": {...}} style training checkpoints
        if isinstance(obj, Mapping) and not _looks_like_state_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _looks_like_state_dict(obj):
        raise CheckpointError("checkpoint holds no state dict of tensors: pass a model's state_dict() or a file of one")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in ("module.", "_orig_mod.", "model."):  # DataParallel / torch.compile / wrappers
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _looks_like_state_dict(obj: Mapping) -> bool:
    import torch

    return bool(obj) and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def _mismatches(model_shapes: dict, state: dict) -> list[str]:
    problems = []
    for key, shape in model_shapes.items():
        if key not in state:
            problems.append(f"missing {key}")
        elif tuple(state[key].shape) != shape:
            problems.append(f"{key} has shape {tuple(state[key].shape)}, model needs {shape}")
    problems += [f"unexpected {k}" for k in state if k not in model_shapes]
    return problems


def detect_layout(model, state: StateDict) -> tuple[str, dict]:
    """The layout name and the converted state dict that fits ``model`` exactly."""
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layouts: dict[str, LayoutConverter] = {"edgecls": dict}
    layouts.update(getattr(type(model), "checkpoint_layouts", {}))
    adapt = getattr(model, "adapt_checkpoint", None) or (lambda state: state)
    best: tuple[int, str, list[str]] | None = None
    for layout, convert in layouts.items():
        try:
            converted = adapt(convert(state))
        except Exception as exc:  # a converter that cannot handle foreign keys simply does not match
            problems = [f"{layout} converter failed: {exc}"]
        else:
            problems = _mismatches(model_shapes, converted)
            if not problems:
                return layout, converted
        if best is None or len(problems) < best[0]:
            best = (len(problems), layout, problems)
    assert best is not None
    count, layout, problems = best
    model_name = getattr(getattr(model, "edgecls_info", None), "name", type(model).__name__)
    shown = "; ".join(problems[:3])
    raise CheckpointError(
        f"checkpoint does not fit {model_name} in any known layout "
        f"(closest: {layout}, {count} mismatches: {shown}{'; ...' if count > 3 else ''}); "
        "check the model name, width and num_classes"
    )


def load_weights(model, source: Any) -> str:
    """Load ``source`` (path or state dict) into ``model`` strictly; returns the detected layout."""
    import torch

    state = read_checkpoint(source)
    layout, converted = detect_layout(model, state)
    with torch.no_grad():
        model.load_state_dict(converted, strict=True)
    return layout
