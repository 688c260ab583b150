"""Winograd F(4x4,3x3) for the U-Net on the CPU, in fp32: the transforms, and the inference network.

Inference (`WinogradUNet`, used by `Predictor` on the CPU unless `--no-winograd`): the same network
in fewer operations. 3x3 convolutions with at least 64 input and output channels run as Winograd
F(4x4,3x3) (36 multiplications per 4x4 output block instead of 144; the transforms are roadseg's
kernels, the products one oneDNN 36-group 1x1 convolution); each stride-2 transposed convolution runs
as four small phase convolutions whose outputs the next convolution reads in place, together with the
skip connection, so neither the upsampled map nor the concatenation is ever written out; batch norm
is folded into the convolutions and ReLU into their outputs. Logits match the PyTorch modules'
within 1e-4 (tested, and self-checked on first use).

Training convolutions in the Winograd domain are in `roadseg.accel.training`.

Usage::

    fast = WinogradUNet.build(model)          # None where the kernels cannot be built
    logits = fast(images)                     # (N,3,H,W) float32, channels-last or not
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

from . import kernels
from .fused import ONEDNN_OPS, packed_weight
from ..nets import UNet
from ..nets.upsample import phase_maps, phase_weights

# Filter transform G of F(4x4,3x3) (Lavin & Gray, points 0, +-1, +-2), matching csrc/winograd.cpp.
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
MIN_CHANNELS = 64  # below this (at full resolution) the transforms cost more than they save
# Inference batches larger than this many pixels run in chunks: at 352x480 a batch of 32 in one piece
# peaked at 9.1 GB and its second call ran at half speed while the heap grew; in chunks of 4 frames,
# 2.4 GB and a steady 8.5-9 img/s (2-core Zen 5). Batch 32 at 96x128 is one chunk.
MAX_CHUNK_PIXELS = 2**20
_MKLDNN = ONEDNN_OPS


def winograd_weight(w: torch.Tensor) -> torch.Tensor:
    """(K,C,3,3) conv weight -> (36*K, C, 1, 1) G g G^T, position-major: the 36-group 1x1 conv weight
    (one matrix product, in w's dtype)."""
    k, c = w.shape[:2]
    kron = torch.kron(_G, _G).to(w.dtype)  # (36, 9): [6a+b, 3i+j] = G[a,i] G[b,j]
    return torch.mm(kron, w.reshape(k * c, 9).t()).reshape(36 * k, c, 1, 1)


def winograd_weight_grad(gu: torch.Tensor) -> torch.Tensor:
    """(36, K, C) gradient of the transformed weight -> (K, C, 3, 3) gradient of the weight."""
    k, c = gu.shape[1:]
    kron = torch.kron(_G, _G).to(gu.dtype)
    return torch.mm(kron.t(), gu.reshape(36, k * c)).t().reshape(k, c, 3, 3)


def fits(in_channels: tuple[int, ...], out_channels: int) -> bool:
    """Whether a 3x3 conv reading sources of `in_channels` (concatenated) into `out_channels` runs as
    Winograd: every count a multiple of 16 (the kernels' vectors) and at least MIN_CHANNELS in and out."""
    return all(c % 16 == 0 for c in (*in_channels, out_channels)) \
        and min(sum(in_channels), out_channels) >= MIN_CHANNELS


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's weight and bias with an eval-mode batch norm after it folded in."""
    w = conv.weight.detach().float()
    b = conv.bias.detach().float() if conv.bias is not None else torch.zeros(w.shape[0])
    if bn is not None:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        w = w * scale[:, None, None, None]
        b = (b - bn.running_mean) * scale + bn.bias.detach()
    return w.contiguous(), b.contiguous()


class _Conv:
    """One 3x3 conv (+ folded batch norm) + ReLU, run as Winograd or as a fused oneDNN conv."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, split: tuple[int, ...]) -> None:
        self.weight, self.bias = _fold(conv, bn)
        use = fits(split, self.weight.shape[0])
        self.u = winograd_weight(self.weight.double()).float() if use else None
        self._packed: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, x: torch.Tensor | list[kernels.Source], n: int, h: int, w: int) -> torch.Tensor:
        srcs = x if isinstance(x, list) else None
        if self.u is None:
            if srcs is not None:
                x = kernels.concat_channels(srcs, n, h, w)
            return _conv_relu(x, self.weight, self.bias)
        if srcs is None:  # oneDNN may hand back NCHW where a dimension is 1
            srcs = [kernels.source(x.contiguous(memory_format=torch.channels_last))]
        v = kernels.winograd_input(srcs, n, h, w)
        return kernels.winograd_output(self._products(v), self.bias, True, n, h, w)

    def _products(self, v: torch.Tensor) -> torch.Tensor:
        if not _MKLDNN:
            return F.conv2d(v, self.u, groups=36)
        weight = packed_weight(self._packed, self.u, [0, 0], [1, 1], [1, 1], 36, tuple(v.shape))
        return torch.ops.mkldnn._convolution_pointwise(v, weight, None, [0, 0], [1, 1], [1, 1], 36,
                                                       "none", [], "")


def _conv_relu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if _MKLDNN:  # conv + ReLU in one oneDNN primitive
        return torch.ops.mkldnn._convolution_pointwise(x, w, b, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
    return torch.relu_(F.conv2d(x, w, b, padding=1))


def _block(block: nn.Sequential, in_split: tuple[int, ...]) -> list[_Conv]:
    """A ConvBlock's convs with their batch norms (ReLU follows each; dropout is off in inference)."""
    mods = list(block)
    convs = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None
            convs.append(_Conv(m, bn, in_split if not convs else (convs[-1].weight.shape[0],)))
    return convs


class WinogradUNet:
    """A UNet's weights, transformed once, and an fp32 CPU forward pass over them (see module doc).
    Holds copies: rebuild it after the model's weights change."""

    def __init__(self, model: UNet) -> None:
        if kernels.library() is None:
            raise RuntimeError(f"roadseg's CPU kernels are unavailable: {kernels.why_unavailable()}")
        self.check_size = model.check_size
        with torch.no_grad():
            c_in = model.settings["in_channels"]
            self.encoder = []
            for block in model.encoder:
                self.encoder.append(_block(block, (c_in,)))
                c_in = self.encoder[-1][-1].weight.shape[0]
            self.decoder = []
            for up in model.decoder:
                k = up.up.out_channels
                phases = phase_weights(up.up.weight.detach().float())
                self.decoder.append((phases, up.up.bias.detach().float().contiguous(),
                                     _block(up.conv, (k, up.conv[0].in_channels - k))))
            mods = list(model.head_conv)
            self.head = _Conv(mods[0], mods[1] if isinstance(mods[1], nn.BatchNorm2d) else None, (c_in,))
            self.classifier = (model.classifier.weight.detach().float().contiguous(),
                               model.classifier.bias.detach().float().contiguous())

    @classmethod
    def build(cls, model: nn.Module) -> "WinogradUNet | None":
        """The fast network for `model`, or None if it is not a network this supports, or the kernels
        cannot be built or fail their self-check here (`unavailable_reason()` says which)."""
        if not supports(model) or unavailable_reason():
            return None
        return cls(model)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N,classes,H,W), channels-last, for (N,C,H,W) fp32 images on the CPU; large batches
        run in chunks of at most MAX_CHUNK_PIXELS pixels."""
        n, _, h, w = x.shape
        self.check_size(h, w)  # the phase sources are read without bounds checks
        per_chunk = max(1, MAX_CHUNK_PIXELS // (h * w))
        if n > per_chunk:
            return torch.cat([self._forward(x[i:i + per_chunk]) for i in range(0, n, per_chunk)])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous(memory_format=torch.channels_last)
        n, _, h, w = x.shape
        skips = []
        for i, (first, second) in enumerate(self.encoder):
            x = second(first(x, n, h, w), n, h, w).contiguous(memory_format=torch.channels_last)
            if i < len(self.encoder) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
                h, w = h // 2, w // 2
        for (phases, bias, (first, second)), skip in zip(self.decoder, reversed(skips)):
            up = _upsample_phases(x, phases, bias)
            h, w = skip.shape[2:]
            x = second(first([kernels.phased_source(up), kernels.source(skip)], n, h, w), n, h, w)
        x = self.head(x, n, h, w)
        return F.conv2d(x, *self.classifier)


def supports(model: nn.Module) -> bool:
    """Whether the Winograd network can run `model` (the notebook's U-Net, any width and depth)."""
    return isinstance(model, UNet)


@functools.cache
def _self_check() -> str:
    """'' if the kernels reproduce PyTorch's logits on two small networks on this machine (a guard
    against a miscompiled library or changed oneDNN ops), else what went wrong. The wide network runs
    the input and output transforms; the narrow one the concatenation kernel."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        models = [UNet(num_classes=5, base_filters=64, depth=2).eval(), UNet(num_classes=5, base_filters=16, depth=2).eval()]
        x = torch.rand(2, 3, 8, 12)
    for model in models:
        try:
            with torch.no_grad():
                expected, got = model(x), WinogradUNet(model)(x)
        except Exception as e:  # any failure of the kernels or of oneDNN's ops means: do not use them
            return f"self-check failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:120]}"
        err = (got - expected).abs().max().item()
        if not err <= 1e-4 * max(1.0, expected.abs().max().item()):
            return f"self-check failed: logits differ by {err:.2g}"
    return ""


def unavailable_reason() -> str:
    """Why the Winograd network cannot run here ('' when it can)."""
    if kernels.library() is None:
        return kernels.why_unavailable()
    return _self_check()


def _upsample_phases(x: torch.Tensor, phases: tuple[torch.Tensor, ...], bias: torch.Tensor) -> list[torch.Tensor]:
    """The four phases of the stride-2 transposed conv (Keras 'same' alignment, as UpBlock crops it):
    even/even rows and columns, even/odd, odd/even, odd/odd, each (N,K,H,W) with channel stride 1."""
    return list(phase_maps(x, phases, bias))
