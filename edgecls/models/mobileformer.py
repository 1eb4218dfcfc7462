"""Mobile-Former (Chen et al., "Mobile-Former: Bridging MobileNet and Transformer", CVPR 2022).

A MobileNet-like stack of "Mobile" sub-blocks runs in parallel with a "Former": a handful of
global tokens (3 to 6) refined by self-attention. Two light cross-attention bridges connect them
in every block: Mobile->Former lets the tokens read the feature map, Former->Mobile writes the
tokens back into it. The Mobile side uses dynamic ReLU whose slopes come from the first token.

The network is the one of AAboys/MobileFormer (commit f447310, whose released weights reproduce
the paper); its checkpoints load through the "mobileformer" layout below. Written for export:
attention is plain matmul + softmax, tokens are batch-first (B, T, D), every reshape is static.

The arithmetic keeps the reference's order (attention scores scaled after the matmul, dynamic-ReLU
slopes as ``(a - 0.5) * 2 + 1``) although shorter forms are equal in exact arithmetic: with the
random weights of the fidelity test, activations grow to ~1e6 and the head's ReLU6 turns fp32
rounding differences into logit differences above 1e-4, so only the same order reproduces them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from edgecls.models.layers import ConvBnAct
from edgecls.models.registry import register_variant

# Heads of the two bridges and of the Former's self-attention, as in the reference code (the
# Former's count is not configurable there, it always uses 4).
BRIDGE_HEADS = 2
FORMER_HEADS = 4
FFN_RATIO = 2
HYPER_REDUCTION = 4  # token_dim -> token_dim / 4 in the dynamic-ReLU coefficient MLP
HEAD_EXPANSION = 6  # the head's 1x1 conv widens the last stage 6x before pooling


@dataclass(frozen=True)
class MobileFormerConfig:
    stem_channels: int
    num_tokens: int
    token_dim: int
    head_features: int
    # Each row is (kind, expand, out_channels, stride, second_expand); second_expand is for "down" only:
    #   "lite":     depthwise 3x3 expansion + grouped 1x1 projection, no bridges (first block);
    #   "down":     depthwise 3x3/2 expansion -> 1x1 -> depthwise 3x3 expansion -> 1x1 (stride 2);
    #   "inverted": MobileNetV2 inverted bottleneck 1x1 -> depthwise 3x3 -> 1x1.
    blocks: tuple[tuple[str, int, int, int, int], ...]
    # The 26M model uses grouped 1x1 convs with channel shuffles (ShuffleNet style) to save MAdds.
    groups: int = 1


_SMALL_BLOCKS = (
    ("lite", 3, 12, 2, 0),
    ("inverted", 3, 12, 1, 0),
    ("down", 6, 24, 2, 4),
    ("inverted", 3, 24, 1, 0),
    ("down", 6, 48, 2, 4),
    ("inverted", 4, 48, 1, 0),
    ("inverted", 6, 64, 1, 0),
    ("down", 6, 96, 2, 4),
    ("inverted", 6, 96, 1, 0),
)


def _large_blocks(stem: int, c1: int, c2: int, c3: int, c4: int, c5: int, expand56: int, expand28: int) -> tuple:
    """The 12-block layout of the 151M..508M models: they differ in widths and in the expansion of
    the inverted bottlenecks at 56x56 and 28x28."""
    return (
        ("lite", 2, stem, 1, 0),
        ("down", 6, c1, 2, 4),
        ("inverted", expand56, c1, 1, 0),
        ("down", 6, c2, 2, 4),
        ("inverted", expand28, c2, 1, 0),
        ("down", 6, c3, 2, 4),
        ("inverted", 4, c3, 1, 0),
        ("inverted", 6, c4, 1, 0),
        ("inverted", 6, c4, 1, 0),
        ("down", 6, c5, 2, 4),
        ("inverted", 6, c5, 1, 0),
        ("inverted", 6, c5, 1, 0),
    )


MOBILE_FORMER_CONFIGS = {
    "26m": MobileFormerConfig(8, 3, 128, 1024, _SMALL_BLOCKS, groups=4),
    "52m": MobileFormerConfig(8, 3, 128, 1024, _SMALL_BLOCKS),
    "96m": MobileFormerConfig(12, 4, 128, 1280, (
        ("lite", 2, 12, 1, 0),
        ("down", 6, 16, 2, 4),
        ("down", 6, 32, 2, 4),
        ("inverted", 3, 32, 1, 0),
        ("down", 6, 64, 2, 4),
        ("inverted", 4, 64, 1, 0),
        ("inverted", 6, 88, 1, 0),
        ("down", 6, 128, 2, 4),
        ("inverted", 6, 128, 1, 0),
    )),
    "151m": MobileFormerConfig(12, 6, 192, 1280, _large_blocks(12, 16, 32, 64, 88, 128, expand56=3, expand28=3)),
    "214m": MobileFormerConfig(12, 6, 192, 1600, _large_blocks(12, 20, 40, 80, 112, 160, expand56=3, expand28=4)),
    "294m": MobileFormerConfig(16, 6, 192, 1920, _large_blocks(16, 24, 48, 96, 128, 192, expand56=4, expand28=4)),
    "508m": MobileFormerConfig(24, 6, 192, 1920, _large_blocks(24, 40, 72, 128, 176, 240, expand56=3, expand28=3)),
}


class ChannelShuffle(nn.Module):
    """Interleave ``groups`` channel groups so the next grouped conv sees every group."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(b, c, h, w)


def _shuffle_if_grouped(shuffle_groups: int, conv_groups: int) -> nn.Module:
    # Shuffles only exist where the 1x1 convs are grouped (the 26M model).
    return ChannelShuffle(shuffle_groups) if conv_groups > 1 else nn.Identity()


class DynamicReLU(nn.Module):
    """Dynamic ReLU: ``max(a1 * x, a2 * x)`` with per-channel slopes computed from the first token.

    The slopes come out of a hard-sigmoid, mapped to [0, 2] for ``a1`` and [-1, 1] for ``a2``; no
    static ReLU comes before it.
    """

    def __init__(self, channels: int, token_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.fc1 = nn.Linear(token_dim, token_dim // HYPER_REDUCTION)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(token_dim // HYPER_REDUCTION, 2 * channels)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        coeffs = self.gate(self.fc2(self.act(self.fc1(tokens[:, 0]))))
        coeffs = coeffs.reshape(coeffs.shape[0], 2 * self.channels, 1, 1)
        slope1 = (coeffs[:, : self.channels] - 0.5) * 2.0 + 1.0
        slope2 = (coeffs[:, self.channels :] - 0.5) * 2.0
        return torch.maximum(x * slope1, x * slope2)


class MobileToFormer(nn.Module):
    """Bridge in which the tokens attend to every pixel of the feature map.

    Keys and values are the feature map itself (no projections on the large side, to keep the
    bridge cheap); the query comes from the tokens, and the result is gated per channel by the
    tokens before being projected back to token width.
    """

    def __init__(self, channels: int, token_dim: int, heads: int = BRIDGE_HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.gate = nn.Linear(token_dim, channels)
        self.gate_act = nn.Hardsigmoid()
        self.query = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(channels, token_dim)
        self.norm = nn.LayerNorm(token_dim)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = tokens.shape[1]
        head_dim = c // self.heads
        q = self.query(tokens).reshape(b, t, self.heads, head_dim).transpose(1, 2)
        k = x.reshape(b, self.heads, head_dim, h * w)
        attn = torch.softmax((q @ k) * self.scale, dim=-1)  # (B, heads, T, HW)
        read = (attn @ k.transpose(-1, -2)).transpose(1, 2).reshape(b, t, c)
        read = read * (self.gate_act(self.gate(tokens)) * 2.0)
        return self.norm(tokens + self.proj(read))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Former(nn.Module):
    """Post-norm transformer layer on the tokens; keys and values are the tokens themselves."""

    def __init__(self, token_dim: int, heads: int = FORMER_HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (token_dim // heads) ** -0.5
        self.query = nn.Linear(token_dim, token_dim)
        self.proj = nn.Linear(token_dim, token_dim)
        self.norm = nn.LayerNorm(token_dim)
        self.ffn = FeedForward(token_dim, token_dim * FFN_RATIO)
        self.ffn_norm = nn.LayerNorm(token_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t, d = tokens.shape
        head_dim = d // self.heads
        q = self.query(tokens).reshape(b, t, self.heads, head_dim).transpose(1, 2)
        kv = tokens.reshape(b, t, self.heads, head_dim).transpose(1, 2)
        attn = torch.softmax((q @ kv.transpose(-1, -2)) * self.scale, dim=-1)  # (B, heads, T, T)
        mixed = (attn @ kv).transpose(1, 2).reshape(b, t, d)
        tokens = self.norm(tokens + self.proj(mixed))
        return self.ffn_norm(tokens + self.ffn(tokens))


class FormerToMobile(nn.Module):
    """Bridge in which every pixel attends to the tokens; the feature map is the query as it is."""

    def __init__(self, channels: int, token_dim: int, heads: int = BRIDGE_HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.key = nn.Linear(token_dim, channels)
        self.value = nn.Linear(token_dim, channels)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = tokens.shape[1]
        head_dim = c // self.heads
        q = x.reshape(b, self.heads, head_dim, h * w).transpose(-1, -2)  # (B, heads, HW, hd)
        k = self.key(tokens).reshape(b, t, self.heads, head_dim).permute(0, 2, 3, 1)
        v = self.value(tokens).reshape(b, t, self.heads, head_dim).transpose(1, 2)
        attn = torch.softmax((q @ k) * self.scale, dim=-1)  # (B, heads, HW, T)
        written = (attn @ v).transpose(-1, -2).reshape(b, c, h, w)
        return x + written


class LiteBottleneck(nn.Module):
    """First block: depthwise 3x3 that expands channels, then a (grouped) linear 1x1 projection."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int, groups: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.expand = ConvBnAct(in_ch, hidden, 3, stride, groups=in_ch, act=nn.ReLU6)
        # The shuffle interleaves per-input-channel expansions (groups = in_ch), as the reference does.
        self.shuffle = _shuffle_if_grouped(in_ch, groups)
        self.project = ConvBnAct(hidden, out_ch, 1, groups=groups, act=None)
        self.use_shortcut = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.project(self.shuffle(self.expand(x)))
        return (out + x if self.use_shortcut else out), tokens


class InvertedBottleneck(nn.Module):
    """Mobile sub-block 1x1 -> depthwise 3x3 -> 1x1 with dynamic ReLUs, plus the identity shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int, groups: int, token_dim: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.expand = ConvBnAct(in_ch, hidden, 1, groups=groups, act=None)
        self.expand_shuffle = _shuffle_if_grouped(groups, groups)
        self.expand_act = DynamicReLU(hidden, token_dim)
        self.depthwise = ConvBnAct(hidden, hidden, 3, stride, groups=hidden, act=None)
        self.depthwise_act = DynamicReLU(hidden, token_dim)
        self.project = ConvBnAct(hidden, out_ch, 1, groups=groups, act=None)
        self.project_shuffle = _shuffle_if_grouped(groups, groups)
        self.use_shortcut = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        out = self.expand_act(self.expand_shuffle(self.expand(x)), tokens)
        out = self.depthwise_act(self.depthwise(out), tokens)
        out = self.project_shuffle(self.project(out))
        return out + x if self.use_shortcut else out


class DownsampleBottleneck(nn.Module):
    """Mobile sub-block for stride 2: depthwise 3x3/2 expansion -> 1x1 -> depthwise 3x3 expansion -> 1x1.

    Downsampling with a depthwise conv first (instead of an expanding 1x1 at full resolution) is
    what keeps these blocks cheap; the second half is a residual on the projected features.
    """

    def __init__(self, in_ch: int, out_ch: int, expand: int, second_expand: int, groups: int,
                 token_dim: int) -> None:
        super().__init__()
        hidden1 = in_ch * expand
        hidden2 = out_ch * second_expand
        self.down = ConvBnAct(in_ch, hidden1, 3, 2, groups=in_ch, act=None)
        self.down_shuffle = _shuffle_if_grouped(in_ch, groups)
        self.down_act = DynamicReLU(hidden1, token_dim)
        self.down_project = ConvBnAct(hidden1, out_ch, 1, groups=groups, act=None)
        self.expand = ConvBnAct(out_ch, hidden2, 3, groups=out_ch, act=None)
        self.expand_shuffle = _shuffle_if_grouped(out_ch, groups)
        self.expand_act = DynamicReLU(hidden2, token_dim)
        self.project = ConvBnAct(hidden2, out_ch, 1, groups=groups, act=None)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        out = self.down_act(self.down_shuffle(self.down(x)), tokens)
        out = self.down_project(out)
        residual = self.expand_act(self.expand_shuffle(self.expand(out)), tokens)
        return out + self.project(residual)


class MobileFormerBlock(nn.Module):
    """Mobile->Former bridge, Former, Mobile sub-block (conditioned on the new tokens), Former->Mobile."""

    def __init__(self, kind: str, in_ch: int, out_ch: int, stride: int, expand: int, second_expand: int,
                 groups: int, token_dim: int) -> None:
        super().__init__()
        self.to_former = MobileToFormer(in_ch, token_dim)
        self.former = Former(token_dim)
        if kind == "inverted":
            self.mobile: nn.Module = InvertedBottleneck(in_ch, out_ch, stride, expand, groups, token_dim)
        elif kind == "down" and stride == 2:
            self.mobile = DownsampleBottleneck(in_ch, out_ch, expand, second_expand, groups, token_dim)
        else:
            raise ValueError(f"unsupported Mobile-Former block {kind!r} with stride {stride}")
        self.to_mobile = FormerToMobile(out_ch, token_dim)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.former(self.to_former(x, tokens))
        x = self.mobile(x, tokens)
        return self.to_mobile(x, tokens), tokens


class MobileFormerHead(nn.Module):
    """1x1 conv + pooled features, concatenated with the first token, then an MLP classifier."""

    def __init__(self, in_ch: int, token_dim: int, features: int, num_classes: int, groups: int,
                 dropout: float) -> None:
        super().__init__()
        hidden = in_ch * HEAD_EXPANSION
        self.shuffle = _shuffle_if_grouped(groups, groups)
        self.conv = ConvBnAct(in_ch, hidden, 1, groups=groups, act=nn.ReLU6)
        self.pool_act = nn.Hardswish()
        self.fc = nn.Linear(hidden + token_dim, features)
        self.fc_bn = nn.BatchNorm1d(features)
        self.fc_act = nn.Hardswish()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        pooled = self.pool_act(self.conv(self.shuffle(x)).mean((2, 3)))
        merged = torch.cat([pooled, tokens[:, 0]], dim=1)
        out = self.fc_act(self.fc_bn(self.fc(merged)))
        return self.classifier(self.dropout(out))


# --- reference checkpoint layout (AAboys/MobileFormer) -------------------------------------------

def _conv_bn(ref: str, ours: str) -> dict[str, str]:
    """A reference Sequential(conv, BatchNorm) -> our ConvBn's children."""
    return {f"{ref}.0": f"{ours}.conv", f"{ref}.1": f"{ours}.bn"}


def _hyper(ref_index: int, ours: str) -> dict[str, str]:
    """The reference's coefficient MLP ``hyper<N>`` -> our DynamicReLU's fc1 / fc2."""
    return {f"hyper{ref_index}.hyper.0": f"{ours}.fc1", f"hyper{ref_index}.hyper.2": f"{ours}.fc2"}


def _to_former(ours: str) -> dict[str, str]:
    """The reference's Mobile->Former bridge (``local_global``) -> our MobileToFormer at ``ours``."""
    return {"local_global.alpha.0": f"{ours}.gate", "local_global.q": f"{ours}.query",
            "local_global.proj": f"{ours}.proj", "local_global.layer_norm": f"{ours}.norm"}


# Per block kind: reference sub-module -> ours. The reference names its convs conv1..conv4 and its
# coefficient MLPs hyper1..hyper3 with meanings that depend on the block kind.
_BLOCK_RENAMES = {
    "lite": {"conv.0": "expand.conv", "conv.1": "expand.bn", "conv.4": "project.conv", "conv.5": "project.bn"},
    "inverted": {
        **_conv_bn("conv1", "mobile.expand"), **_hyper(1, "mobile.expand_act"),
        **_conv_bn("conv2", "mobile.depthwise"), **_hyper(2, "mobile.depthwise_act"),
        **_conv_bn("conv3", "mobile.project"),
    },
    "down": {
        **_conv_bn("conv1", "mobile.down"), **_hyper(1, "mobile.down_act"),
        **_conv_bn("conv2", "mobile.down_project"),
        **_conv_bn("conv3", "mobile.expand"), **_hyper(3, "mobile.expand_act"),
        **_conv_bn("conv4", "mobile.project"),
    },
}
_BRIDGE_RENAMES = {
    **_to_former("to_former"),
    "global_block.q": "former.query", "global_block.channel_mlp": "former.proj",
    "global_block.layer_norm": "former.norm", "global_block.ffn.0": "former.ffn.fc1",
    "global_block.ffn.2": "former.ffn.fc2", "global_block.ffn_norm": "former.ffn_norm",
    "global_local.k": "to_mobile.key", "global_local.proj": "to_mobile.value",
}
_TOP_RENAMES = {
    "tokens.weight": "tokens", **_conv_bn("stem", "stem"), **_to_former("final_to_former"),
    "classifier.conv.1": "head.conv.conv", "classifier.conv.2": "head.conv.bn",
    "classifier.fc.0": "head.fc", "classifier.fc.1": "head.fc_bn", "classifier.classifier.1": "head.classifier",
}
_FEATURE_KEY = re.compile(r"features\.(\d+)\.(.+)")


def _rename_module(key: str, table: dict[str, str]) -> str:
    """Rename the module prefix of ``key`` by the longest matching entry of ``table``."""
    for old in sorted(table, key=len, reverse=True):
        if key == old or key.startswith(old + "."):
            return table[old] + key[len(old):]
    return key


def _block_kind(block_keys: list[str]) -> str:
    if any(k.startswith("conv.") for k in block_keys):
        return "lite"
    return "down" if any(k.startswith("conv4.") for k in block_keys) else "inverted"


def from_reference_layout(state_dict: dict) -> dict:
    """AAboys/MobileFormer state dict -> edgecls names (the kind of each block is read from its keys)."""
    per_block: dict[str, list[str]] = {}
    for key in state_dict:
        match = _FEATURE_KEY.fullmatch(key)
        if match:
            per_block.setdefault(match.group(1), []).append(match.group(2))
    kinds = {index: _block_kind(keys) for index, keys in per_block.items()}
    out = {}
    for key, value in state_dict.items():
        match = _FEATURE_KEY.fullmatch(key)
        if match:
            index, rest = match.groups()
            rest = _rename_module(rest, {**_BLOCK_RENAMES[kinds[index]], **_BRIDGE_RENAMES})
            key = f"blocks.{index}.{rest}"
        else:
            key = _rename_module(key, _TOP_RENAMES)
        out[key] = value
    return out


class MobileFormer(nn.Module):
    checkpoint_layouts = {"mobileformer": from_reference_layout}

    def __init__(self, config: MobileFormerConfig, num_classes: int = 1000, dropout: float = 0.0) -> None:
        super().__init__()
        d = config.token_dim
        # Learned initial tokens, shared by every image.
        self.tokens = nn.Parameter(torch.zeros(config.num_tokens, d))
        nn.init.normal_(self.tokens)
        self.stem = ConvBnAct(3, config.stem_channels, 3, 2, act=nn.ReLU6)
        blocks: list[nn.Module] = []
        ch = config.stem_channels
        for kind, expand, out_ch, stride, second_expand in config.blocks:
            if kind == "lite":
                blocks.append(LiteBottleneck(ch, out_ch, stride, expand, config.groups))
            else:
                blocks.append(MobileFormerBlock(kind, ch, out_ch, stride, expand, second_expand, config.groups, d))
            ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        # The tokens read the last feature map once more before the head.
        self.final_to_former = MobileToFormer(ch, d)
        self.head = MobileFormerHead(ch, d, config.head_features, num_classes, config.groups, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A copy, not an expand(): a no-grad view of a parameter breaks torch's module tracker
        # (and so FlopCounterMode) when it is passed on to submodules.
        tokens = self.tokens.unsqueeze(0).repeat(x.shape[0], 1, 1)
        x = self.stem(x)
        for block in self.blocks:
            x, tokens = block(x, tokens)
        tokens = self.final_to_former(x, tokens)
        return self.head(x, tokens)


# ImageNet top-1 (%) of each size's reference weights; the paper MAdds (millions) are in the name.
MOBILE_FORMER_TOP1 = {"26m": 64.0, "52m": 68.7, "96m": 72.8, "151m": 75.2, "214m": 76.7, "294m": 77.9, "508m": 79.3}

for _size, _top1 in MOBILE_FORMER_TOP1.items():
    register_variant(f"mobileformer_{_size}", MobileFormer, MOBILE_FORMER_CONFIGS[_size], resolution=224,
                     references=(f"mobileformer:mobile_former_{_size}",), top1=_top1,
                     paper_madds=float(_size.rstrip("m")), crop_pct=0.875, interpolation="bilinear")
