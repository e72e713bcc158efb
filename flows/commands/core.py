"""Subcommands that inspect the project: `models`, `params`."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add `models` and `params`."""
    p = sub.add_parser("models", help="list the shipped model architectures")
    p.set_defaults(func=_models)
    p = sub.add_parser("params", help="print the resolved params (after --set overrides) as JSON")
    p.set_defaults(func=_params)


def _models(args: argparse.Namespace) -> int:
    from clip_core.config import get_model_config, list_models

    for name in list_models():
        cfg = get_model_config(name)
        kind = "ResNet" if cfg.vision_cfg.is_resnet else "ViT"
        print(f"{name:24s} {kind:6s} embed_dim={cfg.embed_dim} image_size={cfg.vision_cfg.image_size}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from flows.params import load_params

    print(json.dumps(load_params(args.params, args.overrides).to_dict(), indent=2))
    return 0
