"""The run's tokenizer: a CLIP-style BPE trained on the shards' captions, CLIP's merges file, or a model's own."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence

import fsspec

import clip_core
from components.data.tarstream import iter_shard_samples


def read_captions(shards: Sequence[str], limit: int = 200_000) -> list[str]:
    """Captions (`.txt` members) of the shards, in order, for training a tokenizer; stops after `limit`."""
    captions: list[str] = []
    for sample in iter_shard_samples(shards):
        if "txt" in sample:
            captions.append(sample["txt"].decode("utf-8", "replace"))
            if len(captions) >= limit:
                return captions
    return captions


def build_tokenizer(model: str, tokenizer: str, shards: Sequence[str]) -> clip_core.Tokenizer:
    """`tokenizer: train-bpe`: a BPE trained on the shards' captions with the model's vocab size; else the BPE merges
    file it names. Raises when the tokenizer has more tokens than model `model` embeds."""
    text_cfg = clip_core.get_model_config(model).text_cfg
    if tokenizer == "train-bpe":
        tok = clip_core.Tokenizer.train(read_captions(shards), text_cfg.vocab_size, text_cfg.context_length)
    else:
        tok = clip_core.Tokenizer.from_bpe_merges(tokenizer, text_cfg.context_length)
    if tok.vocab_size > text_cfg.vocab_size:
        raise ValueError(
            f"train.tokenizer has {tok.vocab_size} tokens but model {model!r} embeds only "
            f"{text_cfg.vocab_size}; use tokenizer: train-bpe or a model with a larger vocab"
        )
    return tok


def load_model_tokenizer(model_url: str) -> clip_core.Tokenizer:
    """The tokenizer saved in a model directory: continuing a model's weights needs its own token ids."""
    from tokenizers import Tokenizer as HFTokenizer

    fs, root = fsspec.core.url_to_fs(model_url)
    text = fs.cat_file(posixpath.join(root, "tokenizer.json")).decode()
    meta = json.loads(fs.cat_file(posixpath.join(root, "tokenizer.meta.json")))
    return clip_core.Tokenizer(HFTokenizer.from_str(text), meta["context_length"])
