"""The M3-UNet: a multi-scale modified U-Net with multi-level text conditioning.

Implements the network of "Multi-Modal Modified U-Net for Text-Image Restoration" (M3-UNet):
an encoder/decoder with skip connections, dilated convolutions (dilation strategy 3, 4, 5 or
[3,4,5]; 1 is the plain baseline), a Refine Layer on the image encoder's features, text injected
at several levels, and an output at every decoder scale for the multi-scale L1 loss (Sec. 3.4).
The same class, with extra input channels and a timestep embedding, is the denoiser of the
diffusion refiner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from m3restore.errors import unknown_choice
from m3restore.models.blocks import M3Block, PixelControl, RefineLayer, downsample, timestep_embedding, upsample
from m3restore.models.fusion import FUSIONS, CirculantFusion, CrossAttention, EarlyFusion, TextGate

DILATION_STRATEGIES = ("1", "3", "4", "5", "3,4,5")


@dataclass
class M3UNetConfig:
    """Shape of an M3-UNet; travels with the weights as ``config.json``."""

    in_channels: int = 3
    out_channels: int = 3
    width: int = 32
    patch: int = 2
    enc_blocks: tuple[int, ...] = (1, 2, 2)
    middle_blocks: int = 8
    dec_blocks: tuple[int, ...] = (1, 1, 1)
    dilation: str = "3,4,5"
    down: str = "strided"
    up: str = "pixelshuffle"
    refine_layer: bool = True
    text_dim: int = 384
    cond_dim: int = 128
    fusion: str = "joint"
    attention_levels: int = 2
    time_embedding: bool = False
    global_residual: bool = True
    control_channels: int = 0  # >0: pixel control (conditioning images) injected at every level
    # Channel attention pools over this many input pixels square (0 = the whole image); set it
    # near the training crop so large photos see statistics of the extent seen in training.
    attention_window: int = 0

    def __post_init__(self) -> None:
        self.enc_blocks = tuple(self.enc_blocks)
        self.dec_blocks = tuple(self.dec_blocks)
        if self.dilation not in DILATION_STRATEGIES:
            raise ValueError(unknown_choice("dilation", self.dilation, DILATION_STRATEGIES))
        if self.fusion not in FUSIONS:
            raise ValueError(unknown_choice("fusion", self.fusion, FUSIONS))
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError("enc_blocks and dec_blocks must have one entry per level")
        if self.global_residual and self.out_channels > self.in_channels:
            raise ValueError("global_residual needs out_channels <= in_channels")

    @property
    def levels(self) -> int:
        return len(self.enc_blocks)

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (the pipeline pads to it)."""
        return self.patch * 2**self.levels

    @property
    def dilations(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.dilation.split(","))


@dataclass
class _Cycle:
    values: tuple[int, ...]
    index: int = field(default=0)

    def next(self) -> int:
        value = self.values[self.index % len(self.values)]
        self.index += 1
        return value


class M3UNet(nn.Module):
    """The M3-UNet. Pure: no I/O, no device placement; call ``forward`` on any device.

    ``text`` is any object with ``tokens`` (B, L, D), ``mask`` (B, L) bool, ``pooled`` (B, D)
    and ``present`` (B,) bool — or ``None`` for no text at all. Absent prompts use a learned
    null embedding, so the network works with and without text.
    """

    def __init__(self, config: M3UNetConfig | None = None):
        super().__init__()
        self.config = config = config or M3UNetConfig()
        c, cond = config.width, config.cond_dim
        self.null_tokens = nn.Parameter(torch.randn(1, 1, config.text_dim) * 0.02)
        self.null_pooled = nn.Parameter(torch.zeros(1, config.text_dim))
        self.cond = nn.Sequential(nn.Linear(config.text_dim, cond), nn.GELU(), nn.Linear(cond, cond))
        self.time = (
            nn.Sequential(nn.Linear(cond, cond), nn.GELU(), nn.Linear(cond, cond)) if config.time_embedding else None
        )
        self.early = EarlyFusion(cond) if config.fusion == "early" else None
        in_ch = config.in_channels + (self.early.channels if self.early else 0)
        # Pixel-unshuffle first (as FFDNet does): the whole U-Net then runs at 1/patch resolution,
        # which on a CPU is several times faster for the same quality (measured in benchmarks/).
        self.intro = nn.Sequential(nn.PixelUnshuffle(config.patch), nn.Conv2d(in_ch * config.patch**2, c, 3, padding=1))
        self.refine = RefineLayer(c) if config.refine_layer else nn.Identity()

        dil = _Cycle(config.dilations)
        widths = [c * 2**i for i in range(config.levels + 1)]
        gated = config.fusion in ("joint", "early")
        attn_from = config.levels - config.attention_levels + 1 if config.fusion == "joint" else config.levels + 9

        self.encoders = nn.ModuleList()
        self.enc_gates = nn.ModuleList()
        self.downs = nn.ModuleList()
        for level, n in enumerate(config.enc_blocks):
            w = widths[level]
            self.encoders.append(nn.Sequential(*(M3Block(w, dil.next()) for _ in range(n))))
            self.enc_gates.append(TextGate(cond, w) if gated else nn.Identity())
            self.downs.append(downsample(config.down, w))
        self.control = PixelControl(config.control_channels, widths, config.patch) if config.control_channels else None
        mw = widths[-1]
        self.middle = nn.Sequential(*(M3Block(mw, dil.next()) for _ in range(config.middle_blocks)))
        self.mid_gate = TextGate(cond, mw) if gated or config.fusion == "late" else nn.Identity()
        self.mid_attn = CrossAttention(mw, config.text_dim) if config.fusion == "joint" else None
        self.circulant = CirculantFusion(cond, mw) if config.fusion == "circulant" else None

        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.dec_gates = nn.ModuleList()
        self.dec_attn = nn.ModuleList()
        self.heads = nn.ModuleList()
        for level in reversed(range(config.levels)):
            w = widths[level]
            self.ups.append(upsample(config.up, widths[level + 1]))
            self.decoders.append(nn.Sequential(*(M3Block(w, dil.next()) for _ in range(config.dec_blocks[level]))))
            self.dec_gates.append(TextGate(cond, w) if gated or config.fusion == "late" else nn.Identity())
            self.dec_attn.append(CrossAttention(w, config.text_dim) if level >= attn_from else nn.Identity())
            self.heads.append(
                nn.Sequential(
                    nn.Conv2d(w, config.out_channels * config.patch**2, 3, padding=1), nn.PixelShuffle(config.patch)
                )
            )
        self.enc_attn = nn.ModuleList(
            CrossAttention(widths[level], config.text_dim) if level >= attn_from else nn.Identity()
            for level in range(config.levels)
        )
        self.set_attention_window(config.attention_window)

    def set_attention_window(self, pixels: int) -> None:
        """Pool channel attention over ``pixels`` x ``pixels`` input pixels (0 = globally)."""
        if pixels < 0:
            raise ValueError(f"attention_window must be 0 or positive, got {pixels}")
        self.config.attention_window = int(pixels)
        stages = [(seq, level) for level, seq in enumerate(self.encoders)]
        stages.append((self.middle, self.config.levels))
        stages += [(seq, self.config.levels - 1 - i) for i, seq in enumerate(self.decoders)]
        for seq, level in stages:
            scale = self.config.patch * 2**level
            for block in seq:
                block.attention.window = max(1, pixels // scale) if pixels else 0

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (the pipeline pads to it)."""
        return self.config.multiple

    # -- conditioning -------------------------------------------------------------------------
    def _text(self, text, batch: int, device, dtype):
        """Tokens, mask and conditioning vector, with the learned null text where absent."""
        cfg = self.config
        if text is None:
            tokens = self.null_tokens.expand(batch, -1, -1)
            mask = torch.ones(batch, 1, dtype=torch.bool, device=device)
            pooled = self.null_pooled.expand(batch, -1)
        else:
            if text.tokens.shape[-1] != cfg.text_dim:
                raise ValueError(
                    f"text embeddings are {text.tokens.shape[-1]}-d, this network expects {cfg.text_dim}-d"
                )
            present = text.present.to(device)
            pdtype = self.null_tokens.dtype
            tokens = torch.cat([self.null_tokens.expand(batch, -1, -1), text.tokens.to(device, pdtype)], 1)
            # The null token is attendable only where the prompt is absent, so every row has a key.
            mask = torch.cat([~present[:, None], text.mask.to(device) & present[:, None]], 1)
            pooled = torch.where(present[:, None], text.pooled.to(device, pdtype), self.null_pooled)
        return tokens, mask, pooled

    def forward(
        self,
        x: torch.Tensor,
        text=None,
        timestep: torch.Tensor | None = None,
        *,
        control: torch.Tensor | None = None,
        scales: bool = False,
    ):
        """Restore ``x`` (B, in_channels, H, W), H and W multiples of ``config.multiple``.

        ``control`` (B, control_channels, H, W) are the pixel-control images of a network built
        with ``control_channels``. Returns the full-resolution output, or with ``scales=True`` a
        list of outputs from full resolution down to 1/2**(levels-1), for the multi-scale loss.
        """
        cfg = self.config
        b, _, h, w = x.shape
        if h % cfg.multiple or w % cfg.multiple:
            raise ValueError(f"input {h}x{w} is not a multiple of {cfg.multiple}; pad it first")
        tokens, mask, pooled = self._text(text, b, x.device, x.dtype)
        cond = self.cond(pooled)
        if self.time is not None:
            if timestep is None:
                raise ValueError("this network needs a timestep")
            cond = cond + self.time(timestep_embedding(timestep.to(x.device), cfg.cond_dim).to(cond.dtype))

        controls = self._controls(control, x)
        inp = self.early(x, cond) if self.early is not None else x
        feat = self.refine(self.intro(inp))
        skips = []
        for level, (encoder, gate, attn, down) in enumerate(
            zip(self.encoders, self.enc_gates, self.enc_attn, self.downs)
        ):
            if controls:
                feat = feat + controls[level]
            feat = self._condition(encoder(feat), gate, attn, cond, tokens, mask)
            skips.append(feat)
            feat = down(feat)
        if controls:
            feat = feat + controls[-1]
        feat = self.middle(feat)
        if self.circulant is not None:
            feat = self.circulant(feat, cond)
        feat = self._condition(feat, self.mid_gate, self.mid_attn, cond, tokens, mask)

        outputs = []
        n = len(self.decoders)
        for i, (up, decoder, gate, attn, head, skip) in enumerate(
            zip(self.ups, self.decoders, self.dec_gates, self.dec_attn, self.heads, reversed(skips))
        ):
            feat = self._condition(decoder(up(feat) + skip), gate, attn, cond, tokens, mask)
            if scales or i == n - 1:
                outputs.append(self._output(head(feat), x))
        outputs.reverse()
        return outputs if scales else outputs[0]

    def _controls(self, control: torch.Tensor | None, x: torch.Tensor) -> list[torch.Tensor]:
        if self.control is None:
            if control is not None:
                raise ValueError("this network takes no control images")
            return []
        if control is None:
            raise ValueError("this network needs control images")
        if control.shape[1] != self.config.control_channels or control.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"control images {tuple(control.shape)} do not match {self.config.control_channels} channels "
                f"at {tuple(x.shape[-2:])}"
            )
        return [c.to(x.dtype) for c in self.control(control.to(x.dtype))]

    @staticmethod
    def _condition(feat, gate, attn, cond, tokens, mask):
        if not isinstance(gate, nn.Identity):
            feat = gate(feat, cond)
        if attn is not None and not isinstance(attn, nn.Identity):
            feat = attn(feat, tokens, mask)
        return feat

    def _output(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not self.config.global_residual:
            return residual
        base = x[:, : self.config.out_channels]
        if base.shape[-1] != residual.shape[-1]:
            base = F.adaptive_avg_pool2d(base, residual.shape[-2:])
        return base + residual
