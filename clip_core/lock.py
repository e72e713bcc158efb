"""Tower locking (LiT, open_clip's `lock_image_tower` / `lock_text_tower`): freeze all but a tower's last N layer groups.

Layer groups, first to last, as open_clip orders them (unlocking N keeps the last N trainable):
- ViT: [conv1, class_embedding, positional_embedding, ln_pre], each block but the last, [last block, ln_post], proj
- ModifiedResNet: [stem convs and BatchNorms], layer1 .. layer4, attnpool (open_clip locks this tower only whole)
- text: [token_embedding, positional_embedding], each block but the last, [last block, ln_final], text_projection
`logit_scale` (and `logit_bias`) belong to neither tower and stay trainable.
"""

from __future__ import annotations

from torch import nn

from .resnet import ModifiedResNet

Group = list[nn.Module | nn.Parameter]


def image_groups(visual: nn.Module) -> list[Group]:
    """The image tower's layer groups, first to last."""
    if isinstance(visual, ModifiedResNet):
        stem = [visual.conv1, visual.bn1, visual.conv2, visual.bn2, visual.conv3, visual.bn3]
        return [stem, [visual.layer1], [visual.layer2], [visual.layer3], [visual.layer4], [visual.attnpool]]
    blocks = list(visual.transformer.resblocks)
    first = [visual.conv1, visual.class_embedding, visual.positional_embedding, visual.ln_pre]
    return [first, *[[b] for b in blocks[:-1]], [blocks[-1], visual.ln_post], [visual.proj]]


def text_groups(model: nn.Module) -> list[Group]:
    """The text tower's layer groups (it lives at the top level of CLIP), first to last."""
    blocks = list(model.transformer.resblocks)
    first = [model.token_embedding, model.positional_embedding]
    return [first, *[[b] for b in blocks[:-1]], [blocks[-1], model.ln_final], [model.text_projection]]


def _params(group: Group) -> list[nn.Parameter]:
    return [p for x in group for p in ([x] if isinstance(x, nn.Parameter) else x.parameters())]


def lock_groups(groups: list[Group], unlocked: int) -> list[nn.Module]:
    """requires_grad False for all but the last `unlocked` groups; returns the locked modules (for BatchNorm freezing)."""
    if not 0 <= unlocked <= len(groups):
        raise ValueError(f"unlocked groups must be in [0, {len(groups)}] for this tower, got {unlocked}")
    locked = groups[: len(groups) - unlocked]
    for group in locked:
        for p in _params(group):
            p.requires_grad_(False)
    return [x for group in locked for x in group if isinstance(x, nn.Module)]


def frozen_batch_norms(modules: list[nn.Module]) -> list[nn.Module]:
    """The BatchNorm layers inside `modules`: they must stay in eval mode (running stats unchanged)."""
    return [m for module in modules for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
