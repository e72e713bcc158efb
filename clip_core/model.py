"""The CLIP model: an image tower and a causal text tower projected into one embedding space."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import CLIPConfig, TextConfig, get_model_config
from .lock import frozen_batch_norms, image_groups, lock_groups, text_groups
from .resnet import ModifiedResNet
from .transformer import Transformer
from .vit import PatchDropout, VisionTransformer

MAX_LOGIT_SCALE = math.log(100.0)


def _init_text_weights(m: nn.Module, cfg: TextConfig) -> None:
    """open_clip / OpenAI initialisation: residual projections scaled down with depth."""
    nn.init.normal_(m.token_embedding.weight, std=0.02)
    nn.init.normal_(m.positional_embedding, std=0.01)
    attn_std = cfg.width**-0.5
    proj_std = attn_std * (2 * cfg.layers) ** -0.5
    fc_std = (2 * cfg.width) ** -0.5
    for block in m.transformer.resblocks:
        nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
        nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
        nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
    nn.init.normal_(m.text_projection, std=attn_std)


class CLIP(nn.Module):
    """CLIP with open_clip's state-dict layout: `visual.*`, text tower at top level, `logit_scale`."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.vision_cfg.is_resnet:
            self.visual = ModifiedResNet(cfg.vision_cfg, cfg.embed_dim)
        else:
            self.visual = VisionTransformer(cfg.vision_cfg, cfg.embed_dim, cfg.quick_gelu)
        # The causal text tower lives at the top level of the state dict, as in open_clip.
        t = cfg.text_cfg
        self.token_embedding = nn.Embedding(t.vocab_size, t.width)
        self.positional_embedding = nn.Parameter(torch.empty(t.context_length, t.width))
        self.transformer = Transformer(t.width, t.layers, t.heads, t.mlp_ratio, cfg.quick_gelu)
        self.ln_final = nn.LayerNorm(t.width)
        self.text_projection = nn.Parameter(torch.empty(t.width, cfg.embed_dim))
        _init_text_weights(self, t)
        init_scale = cfg.init_logit_scale if cfg.init_logit_scale is not None else math.log(1 / 0.07)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.logit_bias = None
        if cfg.init_logit_bias is not None:
            self.logit_bias = nn.Parameter(torch.tensor(float(cfg.init_logit_bias)))
        self._frozen_bn: list[nn.Module] = []  # BatchNorm layers kept in eval mode (lock_image_tower)

    def lock_image_tower(self, unlocked_groups: int = 0, freeze_bn_stats: bool = False) -> None:
        """LiT: freeze the image tower but its last `unlocked_groups` layer groups (see lock.py).

        `freeze_bn_stats`: the locked groups' BatchNorm layers stay in eval mode, so training neither
        uses batch statistics there nor updates their running statistics.
        """
        locked = lock_groups(image_groups(self.visual), unlocked_groups)
        if freeze_bn_stats:
            self._frozen_bn = frozen_batch_norms(locked)
            self.train(self.training)

    def lock_text_tower(self, unlocked_layers: int = 0) -> None:
        """Freeze the text tower but its last `unlocked_layers` layer groups (see lock.py)."""
        lock_groups(text_groups(self), unlocked_layers)

    def train(self, mode: bool = True) -> CLIP:
        super().train(mode)
        for m in self._frozen_bn:
            m.eval()
        return self

    @property
    def context_length(self) -> int:
        return self.cfg.text_cfg.context_length

    @property
    def image_size(self) -> int:
        return self.cfg.vision_cfg.image_size

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute transformer blocks in backward to trade compute for activation memory."""
        self.transformer.grad_checkpointing = enable
        if hasattr(self.visual, "transformer"):
            self.visual.transformer.grad_checkpointing = enable

    def set_patch_dropout(self, prob: float) -> None:
        """FLIP patch dropout for training (ViT towers only; eval mode always sees every patch)."""
        if not hasattr(self.visual, "patch_dropout"):
            if prob:
                raise ValueError("patch dropout needs a ViT image tower; this model's is a ResNet (set it to 0)")
            return
        self.visual.patch_dropout = PatchDropout(prob).train(self.visual.training)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D)."""
        x = self.visual(images)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, L) token ids -> (B, D), pooled at EOT (the highest token id, as in CLIP)."""
        x = self.token_embedding(tokens) + self.positional_embedding  # (B, L, W)
        x = self.ln_final(self.transformer(x, causal=True))
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # (B, W)
        x = x @ self.text_projection  # (B, D)
        return F.normalize(x, dim=-1) if normalize else x

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped at 100 as in the paper."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def forward(self, images: torch.Tensor | None = None, tokens: torch.Tensor | None = None) -> tuple[torch.Tensor | None, ...]:
        """Return (image_features, text_features, logit_scale[, logit_bias]), features normalised."""
        img = self.encode_image(images, normalize=True) if images is not None else None
        txt = self.encode_text(tokens, normalize=True) if tokens is not None else None
        if self.logit_bias is not None:
            return img, txt, self.scale(), self.logit_bias
        return img, txt, self.scale()


def create_model(name_or_path: str | Path | CLIPConfig, **overrides: object) -> CLIP:
    """Build a randomly initialised CLIP from a shipped name, a JSON path or a config object."""
    cfg = name_or_path if isinstance(name_or_path, CLIPConfig) else get_model_config(name_or_path)
    if overrides:
        d = cfg.to_dict()
        d.update(overrides)
        cfg = CLIPConfig.from_dict(d, source="create_model overrides")
    return CLIP(cfg)
