"""Blocks shared by the model families.

Everything here is written to export cleanly (ONNX, OpenVINO, TFLite): static shapes derived from
the input, no unfold/fold, hard activations as nn.Hardswish/nn.Hardsigmoid modules.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from edgecls.errors import InvalidArgumentError

ActLayer = Callable[..., nn.Module]
# A factory for the squeeze-excite module of a block, given the channels it gates.
SeFactory = Callable[[int], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 %.

    This is the rule of the MobileNet and EfficientNet reference code; the channel counts of
    every width variant (and so checkpoint compatibility) depend on it.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def check_width(width: float) -> float:
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not math.isfinite(width) or width <= 0:
        raise InvalidArgumentError(f"width multiplier must be a positive number, got {width!r}")
    if width > 8:
        raise InvalidArgumentError(f"width multiplier {width} is out of range: use a value in (0, 8]")
    return float(width)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial side."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, as TF-trained checkpoints need.

    The padding is computed from the input's static height/width, so traced and exported graphs
    get a constant Pad (asymmetric where TF pads more on the bottom/right).
    """

    def padding_for(self, ih: int, iw: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) for an input of ``ih`` x ``iw``."""
        ph = same_padding(int(ih), self.kernel_size[0], self.stride[0], self.dilation[0])
        pw = same_padding(int(iw), self.kernel_size[1], self.stride[1], self.dilation[1])
        return pw[0], pw[1], ph[0], ph[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.padding_for(*x.shape[-2:])
        if any(pad):
            x = F.pad(x, pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def freeze_same_padding(module: nn.Module, sample: torch.Tensor) -> int:
    """Replace every Conv2dSame in ``module`` (in place) by a constant ZeroPad2d for ``sample``'s input
    size and a plain Conv2d sharing its weights, so graph capture that cannot read shapes as numbers
    (torch.fx symbolic tracing, used by coremltools' int8 quantizer: "int() argument must be ... not
    'Proxy'") and quantizers that only know nn.Conv2d see the same computation. Returns the count."""
    sizes: dict[Conv2dSame, tuple[int, int]] = {}
    def record(conv, args) -> None:  # a pre-hook that returned a value would replace the input
        sizes.setdefault(conv, tuple(args[0].shape[-2:]))

    hooks = [m.register_forward_pre_hook(record) for m in module.modules() if isinstance(m, Conv2dSame)]
    try:
        with torch.no_grad():
            module(sample)
    finally:
        for hook in hooks:
            hook.remove()
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv2dSame) and child in sizes:
                plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, 0,
                                  child.dilation, child.groups, bias=child.bias is not None)
                plain.weight, plain.bias = child.weight, child.bias
                pad = child.padding_for(*sizes[child])
                setattr(parent, name, nn.Sequential(nn.ZeroPad2d(pad), plain) if any(pad) else plain)
                replaced += 1
    return replaced


def create_conv2d(
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    bias: bool = False,
    tf_same: bool = False,
) -> nn.Conv2d:
    """A conv with symmetric PyTorch padding, or TF 'SAME' padding when ``tf_same``.

    A stride-1 TF 'SAME' conv with an odd kernel pads symmetrically, so it stays a plain Conv2d.
    """
    if tf_same and stride > 1:
        return Conv2dSame(in_ch, out_ch, kernel, stride, padding=0, groups=groups, bias=bias)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=bias)


class ConvBnAct(nn.Sequential):
    """Conv -> BatchNorm -> activation, with children named ``conv``, ``bn``, ``act``."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: ActLayer | None = nn.ReLU,
        bn_eps: float = 1e-5,
        tf_same: bool = False,
    ) -> None:
        super().__init__()
        self.conv = create_conv2d(in_ch, out_ch, kernel, stride, groups=groups, tf_same=tf_same)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps)
        self.act = act() if act is not None else nn.Identity()


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with 1x1 convs named ``conv_reduce`` / ``conv_expand``."""

    def __init__(
        self,
        channels: int,
        reduced: int,
        act: ActLayer = nn.ReLU,
        gate: ActLayer = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = act()
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * self.gate(s)


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk -> BN -> act -> (SE) -> pointwise 1x1 -> BN (-> act), residual when the shape allows.

    MobileNetV1's block (``pw_act``, no residual) and the first block of MobileNetV2/V3 and
    EfficientNet. Children are named as timm names them, so the families' checkpoints share one layout.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        stride: int = 1,
        act: ActLayer = nn.ReLU,
        pw_act: bool = False,
        se: SeFactory | None = None,
        residual: bool = True,
        bn_eps: float = 1e-5,
        tf_same: bool = False,
    ) -> None:
        super().__init__()
        self.conv_dw = create_conv2d(in_ch, in_ch, kernel, stride, groups=in_ch, tf_same=tf_same)
        self.bn1 = nn.BatchNorm2d(in_ch, eps=bn_eps)
        self.act1 = act()
        self.se = se(in_ch) if se is not None else nn.Identity()
        self.conv_pw = create_conv2d(in_ch, out_ch, 1)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=bn_eps)
        self.act2 = act() if pw_act else nn.Identity()
        self.has_residual = residual and stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.se(self.act1(self.bn1(self.conv_dw(x))))
        out = self.act2(self.bn2(self.conv_pw(out)))
        return out + x if self.has_residual else out


class InvertedResidual(nn.Module):
    """Pointwise expansion -> depthwise kxk -> (SE) -> linear pointwise projection, residual when
    shapes match: MobileNetV2/V3's block and EfficientNet's MBConv (timm's child names).

    The caller picks ``mid_ch`` (MobileNet rounds it with make_divisible, EfficientNet does not).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        mid_ch: int,
        kernel: int = 3,
        stride: int = 1,
        act: ActLayer = nn.ReLU6,
        se: SeFactory | None = None,
        bn_eps: float = 1e-5,
        tf_same: bool = False,
    ) -> None:
        super().__init__()
        self.conv_pw = create_conv2d(in_ch, mid_ch, 1)
        self.bn1 = nn.BatchNorm2d(mid_ch, eps=bn_eps)
        self.act1 = act()
        self.conv_dw = create_conv2d(mid_ch, mid_ch, kernel, stride, groups=mid_ch, tf_same=tf_same)
        self.bn2 = nn.BatchNorm2d(mid_ch, eps=bn_eps)
        self.act2 = act()
        self.se = se(mid_ch) if se is not None else nn.Identity()
        self.conv_pwl = create_conv2d(mid_ch, out_ch, 1)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=bn_eps)
        self.has_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.se(self.act2(self.bn2(self.conv_dw(out))))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_residual else out


class ConvBnActBlock(nn.Module):
    """A plain conv -> BN -> act used as a block (``conv``/``bn1`` names, as timm's ConvBnAct)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, act: ActLayer = nn.ReLU) -> None:
        super().__init__()
        self.conv = create_conv2d(in_ch, out_ch, kernel, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.act1 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))


class ClassifierHead(nn.Module):
    """Global average pool, optional dropout (identity in eval), linear classifier."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean((2, 3))
        return self.classifier(self.dropout(x))


class MobileNetBase(nn.Module):
    """The layout timm gives MobileNetV2/V3/V4 and EfficientNet, with its module names: ``conv_stem``
    -> ``bn1`` -> ``act1`` -> ``blocks`` -> 1x1 ``conv_head`` [-> BatchNorm] -> ``act2``, global
    average pool -> ``dropout`` -> ``classifier``; with ``pool_first`` (MobileNetV3/V4's "efficient
    last stage") the pool comes before the head conv. Subclasses call init_stem, init_blocks and
    init_head, in that order (the registration order is the state dict's)."""

    def init_stem(self, out_ch: int, act: ActLayer, bn_eps: float = 1e-5, tf_same: bool = False) -> None:
        """A 3x3 stride-2 conv from RGB, BatchNorm, activation."""
        self.conv_stem = create_conv2d(3, out_ch, 3, 2, tf_same=tf_same)
        self.bn1 = nn.BatchNorm2d(out_ch, eps=bn_eps)
        self.act1 = act()

    def init_blocks(self, in_ch: int, stages: Iterable[Iterable[Any]],
                    make_block: Callable[[int, Any], tuple[nn.Module, int]]) -> int:
        """``blocks``: a Sequential per stage of the blocks ``make_block(in_ch, row) -> (block, out_ch)``
        makes of its rows, each block fed by the one before; returns the last block's out_ch."""
        stage_modules = []
        for rows in stages:
            blocks = []
            for row in rows:
                block, in_ch = make_block(in_ch, row)
                blocks.append(block)
            stage_modules.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stage_modules)
        return in_ch

    def init_head(self, in_ch: int, head_ch: int, num_classes: int, dropout: float, act: ActLayer,
                  norm: str | None = "bn2", bn_eps: float = 1e-5, pool_first: bool = False) -> None:
        """``norm``: the name of the head conv's BatchNorm (MobileNetV4: ``norm_head``), or None for
        none, and then the head conv has a bias (MobileNetV3)."""
        self.pool_first, self.head_norm = pool_first, norm
        self.conv_head = create_conv2d(in_ch, head_ch, 1, bias=norm is None)
        if norm is not None:
            setattr(self, norm, nn.BatchNorm2d(head_ch, eps=bn_eps))
        self.act2 = act()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(head_ch, num_classes)

    def _head_conv(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_head(x)
        if self.head_norm is not None:
            x = getattr(self, self.head_norm)(x)
        return self.act2(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map before pooling (after the head conv unless it runs pooled)."""
        x = self.blocks(self.act1(self.bn1(self.conv_stem(x))))
        return x if self.pool_first else self._head_conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        x = self._head_conv(x.mean((2, 3), keepdim=True)).flatten(1) if self.pool_first else x.mean((2, 3))
        return self.classifier(self.dropout(x))


# ---- transformer blocks ------------------------------------------------------------------------------
# Attention is spelled out as matmul + softmax (no scaled_dot_product_attention): every converter
# knows these ops, and FlopCounterMode counts the matmuls in the MACs.


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, N, C] -> [B, heads, N, C / heads] (4-D only: TFLite handles 5-D permutes poorly)."""
    b, n, _ = x.shape
    # -1, not c // num_heads: under torch.jit.trace the shape is a traced value and the division an
    # aten::floor_divide + aten::Int pair that coremltools 9 cannot fold ("only 0-dimensional arrays
    # can be converted to Python scalars"); the same reshape without the arithmetic converts.
    return x.reshape(b, n, num_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, N, D] -> [B, N, heads * D]."""
    b, _, n, _ = x.shape
    return x.transpose(1, 2).reshape(b, n, -1)  # -1, not h * d: see split_heads


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v on [B, heads, N, D] tensors."""
    attn = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    return torch.softmax(attn, dim=-1) @ v


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with one fused ``qkv`` projection (output ordered q|k|v, head, head_dim)
    and an output ``proj``, as timm's ViT and MobileViT name them."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise InvalidArgumentError(f"transformer width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, -1))
        return self.proj(merge_heads(attention(q, k, v, self.scale)))


class Mlp(nn.Module):
    """Linear -> activation -> linear (``fc1`` / ``fc2``) on the last dimension, or with ``conv`` the
    same as 1x1 convolutions on the channels of an NCHW map (ConvNeXt's conv_mlp, MobileViT v2)."""

    def __init__(self, dim: int, hidden: int, act: ActLayer = nn.GELU, out_dim: int | None = None,
                 conv: bool = False) -> None:
        super().__init__()
        layer: Callable[[int, int], nn.Module] = partial(nn.Conv2d, kernel_size=1) if conv else nn.Linear
        self.fc1 = layer(dim, hidden)
        self.act = act()
        self.fc2 = layer(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (timm's and torchvision's LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
