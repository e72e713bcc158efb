"""Pre-LN transformer blocks with fused-QKV scaled-dot-product attention (open_clip key names)."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class QuickGELU(nn.Module):
    """The OpenAI CLIP activation: x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention; parameters named like nn.MultiheadAttention for checkpoint interop."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        B, L, W = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3W)
        q, k, v = qkv.view(B, L, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, Dh)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, H, L, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, L, W))


class ResidualAttentionBlock(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = False):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        act = QuickGELU() if quick_gelu else nn.GELU()
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", act), ("c_proj", nn.Linear(hidden, width))])
        )

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of residual attention blocks, batch-first, with optional gradient checkpointing."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = False):
        super().__init__()
        self.width = width
        self.grad_checkpointing = False
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)])

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.resblocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, causal, use_reentrant=False)
            else:
                x = block(x, causal=causal)
        return x
