"""Write models out: this project's model directory (import, WiSE-FT interpolation) and open_clip's hub layout (export).

Import turns any input `hub.load_model` reads into one self-describing directory, so later
stages never re-guess the architecture or re-read a foreign format, and `provenance.json` says
where the weights came from. Export writes the layout `open_clip.create_model_and_transforms(
"local-dir:DIR")` loads, so a model trained here runs in open_clip-based tools unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .checkpoint import _atomic, save_checkpoint
from .hub import LoadedModel, file_sha256, is_clip_bpe, load_model
from .model import CLIP
from .open_clip_config import config_to_open_clip

MODEL_DIR_FILES = ("model.safetensors", "model.json", "tokenizer.json", "tokenizer.meta.json", "preprocess.json")


def _write_json(path: Path, obj: dict) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def save_model_dir(loaded: LoadedModel, out_dir: str | Path) -> Path:
    """Write `loaded` as a model directory: weights, config, tokenizer, preprocess (each file atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(loaded.model, out / "model")  # model.safetensors + model.json
    tmp_tok = out / ".tokenizer.json.tmp"
    loaded.tokenizer.save(tmp_tok)  # HF writes in place: write aside, then rename both files
    tmp_tok.with_suffix(".meta.json").replace(out / "tokenizer.meta.json")
    tmp_tok.replace(out / "tokenizer.json")
    _write_json(out / "preprocess.json", loaded.preprocess.to_dict())
    return out


def import_model(
    src: str | Path,
    out_dir: str | Path,
    model_config: str | Path | None = None,
    tokenizer: str | Path | None = None,
) -> LoadedModel:
    """Read `src` in any supported format and write it as a model directory with `provenance.json`."""
    loaded = load_model(src, model_config=model_config, tokenizer=tokenizer)
    out = save_model_dir(loaded, out_dir)
    provenance = {
        "source": str(Path(src).resolve()),
        "source_weights": str(loaded.weights.resolve()),
        "source_sha256": file_sha256(loaded.weights),
        "format": loaded.format,
        "model_config": str(model_config) if model_config is not None else None,
        "tokenizer": str(tokenizer) if tokenizer is not None else None,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(out / "provenance.json", provenance)
    return loaded


def export_open_clip(model: str | Path, out_dir: str | Path) -> list[str]:
    """Write open_clip's hub layout for `model` (any supported input); returns warnings for the user.

    The tokenizer: open_clip's default is CLIP's BPE. A model with another tokenizer (this project
    trains its own by default) still loads in open_clip, but its text ids would be wrong there, so
    `tokenizer.json` is written beside the weights and a warning says so.
    """
    loaded = load_model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().cpu() for k, v in loaded.model.state_dict().items()}
    _atomic(out / "open_clip_model.safetensors", lambda tmp: save_file(sd, tmp))
    hub_cfg = {"model_cfg": config_to_open_clip(loaded.model.cfg), "preprocess_cfg": loaded.preprocess.to_dict()}
    _write_json(out / "open_clip_config.json", hub_cfg)
    warnings = []
    if not is_clip_bpe(loaded.tokenizer):
        tmp_tok = out / ".tokenizer.json.tmp"
        loaded.tokenizer.save(tmp_tok)
        tmp_tok.with_suffix(".meta.json").replace(out / "tokenizer.meta.json")
        tmp_tok.replace(out / "tokenizer.json")
        warnings.append(
            f"{out}: the model's tokenizer is not CLIP's BPE; open_clip.get_tokenizer('local-dir:{out}') would give "
            "wrong ids. Tokenize with clip_core.Tokenizer.load('tokenizer.json') from this directory."
        )
    if (Path(model) / "provenance.json").exists():
        shutil.copyfile(Path(model) / "provenance.json", out / "provenance.json")
    return warnings


def _first_difference(a: Any, b: Any, where: str) -> str | None:
    """The dotted key of the first difference between two JSON-like values, with both values; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            diff = _first_difference(a.get(k), b.get(k), f"{where}.{k}")
            if diff:
                return diff
        return None
    return None if a == b else f"{where}: {a!r} vs {b!r}"


def interpolate_models(a: str | Path, b: str | Path, alpha: float, out_dir: str | Path) -> LoadedModel:
    """WiSE-FT (Wortsman et al. 2022): the model directory with weights (1 - alpha) * A + alpha * B.

    A is usually the initial (zero-shot) model and B its fine-tuned descendant; alpha 0 gives A and
    1 gives B exactly. Both must share architecture, tokenizer and preprocessing: the first
    mismatching key is named. The result carries A's tokenizer and preprocessing and a
    provenance.json naming both inputs and alpha.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (0 = {a}, 1 = {b}), got {alpha}")
    la, lb = load_model(a), load_model(b)
    meta = {"tokenizer": {"vocab": la.tokenizer.backend.get_vocab(), "context_length": la.tokenizer.context_length}}
    meta_b = {"tokenizer": {"vocab": lb.tokenizer.backend.get_vocab(), "context_length": lb.tokenizer.context_length}}
    checks = [
        (la.model.cfg.to_dict(), lb.model.cfg.to_dict(), "model"),
        (meta, meta_b, "model"),
        (la.preprocess.to_dict(), lb.preprocess.to_dict(), "preprocess"),
    ]
    for x, y, where in checks:
        diff = _first_difference(x, y, where)
        if diff:
            if ".vocab." in diff:  # a whole vocabulary is no message: name the first differing token only
                diff = diff.split(":")[0]
            raise ValueError(f"cannot interpolate {a} and {b}: they differ at {diff}")
    sd_a, sd_b = la.model.state_dict(), lb.model.state_dict()
    mixed = {}
    for k, va in sd_a.items():
        vb = sd_b[k]
        # (1 - alpha) * A + alpha * B: exact at alpha 0 and 1, and 0.5 is the exact mean (halving is exact)
        mixed[k] = ((1.0 - alpha) * va + alpha * vb).to(va.dtype) if va.is_floating_point() else va.clone()
    model = CLIP(la.model.cfg)
    model.load_state_dict(mixed, strict=True)
    out = save_model_dir(dataclasses.replace(la, model=model.eval()), out_dir)
    provenance = {
        "wise_ft": {"a": str(Path(a).resolve()), "b": str(Path(b).resolve()), "alpha": alpha},
        "a_sha256": la.sha256,
        "b_sha256": lb.sha256,
        "format": "wise-ft",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(out / "provenance.json", provenance)
    return dataclasses.replace(la, model=model.eval(), format="wise-ft", source=out, weights=out / "model.safetensors")
