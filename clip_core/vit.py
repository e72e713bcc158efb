"""Vision Transformer image tower (patch embedding, class token, pre/post LayerNorm, projection)."""

from __future__ import annotations

import torch
from torch import nn

from .config import VisionConfig
from .transformer import Transformer


class PatchDropout(nn.Module):
    """FLIP's patch dropout (open_clip's semantics): in training, keep a random `1 - prob` of the patch tokens.

    The class token (position 0) is always kept; each image draws its own subset (topk of Gaussian noise,
    as open_clip), so kept = max(1, int(n_patches * (1 - prob))). A no-op in eval mode and at prob 0.
    """

    def __init__(self, prob: float = 0.0):
        super().__init__()
        if not 0.0 <= prob < 1.0:
            raise ValueError(f"patch dropout must be in [0, 1), got {prob}")
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        cls, patches = x[:, :1], x[:, 1:]  # (B, 1, W), (B, N, W)
        batch, n = patches.shape[:2]
        keep = max(1, int(n * (1.0 - self.prob)))
        idx = torch.randn(batch, n, device=x.device).topk(keep, dim=-1).indices  # (B, keep)
        patches = patches[torch.arange(batch, device=x.device)[:, None], idx]  # (B, keep, W)
        return torch.cat([cls, patches], dim=1)


class VisionTransformer(nn.Module):
    """ViT as in CLIP: conv patchify, [CLS] + positions, ln_pre, transformer, ln_post on [CLS], proj."""

    def __init__(self, cfg: VisionConfig, output_dim: int, quick_gelu: bool = False):
        super().__init__()
        self.image_size = cfg.image_size
        self.grid = cfg.image_size // cfg.patch_size
        width = cfg.width
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid**2 + 1, width))
        self.patch_dropout = PatchDropout(0.0)  # set for training by CLIP.set_patch_dropout; no parameters
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, cfg.layers, width // cfg.head_width, cfg.mlp_ratio, quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, W, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, g*g, W)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (B, 1, W)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (B, 1+g*g, W)
        x = self.patch_dropout(x)  # (B, 1+kept, W) in training, unchanged otherwise
        x = self.transformer(self.ln_pre(x))
        pooled = self.ln_post(x[:, 0])  # (B, W): LayerNorm is per token, so pool-then-norm == norm-then-pool
        return pooled @ self.proj  # (B, D)
