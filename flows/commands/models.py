"""Subcommand `models`: list the shipped architectures, import any model into a model directory, export to open_clip,
interpolate two model directories (WiSE-FT).

`import` is how a model from elsewhere joins the pipeline (one self-describing directory, with
provenance); `export` is how a model trained here leaves it (open_clip's hub layout).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `models [list|import|export|interpolate]`."""
    p = sub.add_parser(
        "models", help="list architectures; import a model (open_clip, OpenAI, hub dir); export to open_clip; WiSE-FT"
    )
    p.set_defaults(func=_list)
    steps = p.add_subparsers(dest="models_command", metavar="{list,import,export,interpolate}")
    steps.add_parser("list", help="the shipped model architectures (the default)").set_defaults(func=_list)
    imp = steps.add_parser(
        "import",
        help="write a model directory from a checkpoint file, an open_clip hub dir or OpenAI's file",
        description="Formats: .safetensors, torch state dicts (.pt/.bin/.pth, read with weights_only=True), "
        "OpenAI's TorchScript files (tensors read without running them), open_clip hub directories "
        "(open_clip_config.json + weights), this project's model directories.",
    )
    imp.add_argument("src", help="checkpoint file or directory")
    add_model_flags(imp)
    imp.add_argument("--out", required=True, help="model directory to write")
    imp.set_defaults(func=_import)
    exp = steps.add_parser("export", help="write open_clip's hub layout (loads with open_clip 'local-dir:DIR')")
    exp.add_argument("model", help="model directory (or any input `import` reads)")
    exp.add_argument("--format", choices=["open_clip"], default="open_clip", help="output layout (default: open_clip)")
    exp.add_argument("--out", required=True, help="directory to write")
    exp.set_defaults(func=_export)
    mix = steps.add_parser(
        "interpolate",
        help="WiSE-FT: the model directory with weights (1 - alpha) * A + alpha * B",
        description="Weight-space ensembling (WiSE-FT): A is typically the initial model, B the model fine-tuned from "
        "it. Architecture, tokenizer and preprocessing must match; the first mismatching key is named.",
    )
    mix.add_argument("a", help="model directory (or any input `import` reads): alpha 0")
    mix.add_argument("b", help="model directory: alpha 1")
    mix.add_argument("--alpha", type=float, default=0.5, help="weight of B in [0, 1] (default 0.5)")
    mix.add_argument("--out", required=True, help="model directory to write")
    mix.set_defaults(func=_interpolate)


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """`--config`/`--model-config` and `--tokenizer`, for inputs whose weights do not say everything."""
    p.add_argument(
        "--model-config",
        "--config",
        dest="model_config",
        default=None,
        metavar="NAME_OR_JSON",
        help="architecture when the weights cannot tell it (QuickGELU, head width): a name from "
        "`clip-pipeline models`, an open_clip model name, or a JSON file",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="PATH",
        help="bpe_simple_vocab_16e6.txt.gz or a tokenizer.json (default: the model's own, else CLIP's BPE from open_clip)",
    )


def _list(args: argparse.Namespace) -> int:
    from clip_core.config import get_model_config, list_models

    for name in list_models():
        cfg = get_model_config(name)
        kind = "ResNet" if cfg.vision_cfg.is_resnet else "ViT"
        print(f"{name:24s} {kind:6s} embed_dim={cfg.embed_dim} image_size={cfg.vision_cfg.image_size}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from clip_core import import_model

    loaded = import_model(args.src, args.out, model_config=args.model_config, tokenizer=args.tokenizer)
    cfg = loaded.model.cfg
    kind = "ResNet" if cfg.vision_cfg.is_resnet else "ViT"
    print(f"imported {args.src} ({loaded.format}): {kind}, embed_dim={cfg.embed_dim}, quick_gelu={cfg.quick_gelu}")
    print(f"model directory: {args.out} (provenance.json says where it came from)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from clip_core import export_open_clip

    for warning in export_open_clip(args.model, args.out):
        print(f"warning: {warning}")
    print(f"open_clip layout in {args.out}: open_clip.create_model_and_transforms('local-dir:{args.out}')")
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    from clip_core import interpolate_models

    interpolate_models(args.a, args.b, args.alpha, args.out)
    print(f"model directory: {args.out} = {1 - args.alpha:g} * {args.a} + {args.alpha:g} * {args.b} (provenance.json)")
    return 0
