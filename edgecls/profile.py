"""Params, MACs and activation memory of a PyTorch model, in total and per layer.

MACs are multiply-accumulates of convolutions, linear layers and matrix products (attention
matmuls included), counted by torch's own FlopCounterMode (FLOPs / 2) so the figures match the
reference counts; elementwise ops, pooling and normalisation are not counted, as in the papers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class LayerProfile:
    name: str
    kind: str
    output_shape: list[int]
    params: int
    macs: int


@dataclass
class ModelProfile:
    name: str
    resolution: int
    batch: int
    params: int
    macs: int
    activation_bytes: int  # sum of every layer's fp32 output: what a runtime without reuse would hold
    peak_activation_bytes: int  # largest input+output pair of one layer: a lower bound for any runtime
    layers: list[LayerProfile] = field(default_factory=list)

    def to_dict(self, layers: bool = False) -> dict:
        out = asdict(self)
        if not layers:
            out.pop("layers")
        return out


def _count_flops_per_module(model, x) -> dict[str, int]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    per_module = {}
    for path, ops in counter.get_flop_counts().items():
        per_module[path] = int(sum(ops.values()))
    return per_module


def profile_model(model, resolution: int | None = None, batch: int = 1, name: str | None = None) -> ModelProfile:
    """Profile ``model`` on a (batch, 3, resolution, resolution) input."""
    import torch

    info = getattr(model, "edgecls_info", None)
    if resolution is None:
        resolution = info.resolution if info else 224
    elif info is not None:
        info.check_resolution(resolution)
    name = name or (info.name if info else type(model).__name__)
    model = model.eval()
    # On the meta device (as `edgecls models` counts) nothing is computed, only shapes.
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(batch, 3, resolution, resolution, device=device)

    outputs: dict[str, tuple[list[int], int, int]] = {}
    hooks = []
    for mod_name, module in model.named_modules():
        if mod_name and not list(module.children()):

            def hook(mod, inputs, out, mod_name=mod_name):
                if isinstance(out, torch.Tensor):
                    in_bytes = sum(t.numel() * 4 for t in inputs if isinstance(t, torch.Tensor))
                    outputs[mod_name] = (list(out.shape), out.numel() * 4, in_bytes)

            hooks.append(module.register_forward_hook(hook))
    try:
        flops = _count_flops_per_module(model, x)
    finally:
        for h in hooks:
            h.remove()

    root = type(model).__name__
    total_macs = flops.get("Global", 0) // 2
    layers = []
    modules = dict(model.named_modules())
    for mod_name, module in modules.items():
        key = f"{root}.{mod_name}" if mod_name else root
        children_flops = sum(flops.get(f"{key}.{c}", 0) for c, _ in module.named_children())
        own_macs = (flops.get(key, 0) - children_flops) // 2
        is_leaf = not list(module.children())
        # Leaves are listed; a container appears only for matmuls in its own forward (attention).
        if (is_leaf and mod_name in outputs) or own_macs > 0:
            shape = outputs.get(mod_name, ([], 0, 0))[0]
            params = sum(p.numel() for p in module.parameters(recurse=is_leaf))
            layers.append(LayerProfile(mod_name or root, type(module).__name__, shape, params, own_macs))
    return ModelProfile(
        name=name,
        resolution=resolution,
        batch=batch,
        params=sum(p.numel() for p in model.parameters()),
        macs=total_macs,
        activation_bytes=sum(o[1] for o in outputs.values()),
        peak_activation_bytes=max((o[1] + o[2] for o in outputs.values()), default=0),
        layers=layers,
    )


def meta_profile(name: str, resolution: int | None = None):
    """(ModelInfo, ModelProfile) of a registered model counted on torch's meta device: shapes only,
    no weights, no compute."""
    from edgecls.models import get_model_info

    info = get_model_info(name)  # before torch: a runtime-only install gets the one-line message
    if resolution is not None:
        info.check_resolution(resolution)
    import torch

    # Families sized at build time (position embeddings, Swin masks) are built for the resolution.
    sized = {"img_size": resolution} if info.sized_at_build and resolution is not None else {}
    with torch.device("meta"):
        model = info.builder(num_classes=info.num_classes, **sized)
    model.edgecls_info = info
    return info, profile_model(model, resolution=resolution)


def model_summary(name: str, resolution: int | None = None) -> dict:
    """Params, MACs and published figures of a registered model (a row of `edgecls models`)."""
    info, profile = meta_profile(name, resolution)
    return {
        "name": info.name,
        "family": info.family,
        "params": profile.params,
        "macs": profile.macs,
        "resolution": profile.resolution,
        "top1": info.top1,
        "paper_madds": info.paper_madds,
        "references": list(info.references),
        "pretrained": info.pretrained is not None,
    }
