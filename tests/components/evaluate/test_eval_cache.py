"""Embedding cache: encodes once per (dataset, checkpoint, transform, precision); keys change with each."""

import numpy as np
import torch

from components.evaluate.cache import EmbeddingCache, cache_key, cached_image_features, encode_images, file_sha256
from components.evaluate.dataset import load_eval_dataset


def test_cache_does_not_re_encode(tmp_path, tiny_model, make_classification_dir, model_factory) -> None:
    model, tokenizer = tiny_model
    ds = load_eval_dataset(make_classification_dir(tmp_path, "c", per_class=2))
    mdir = model_factory[1](model, tokenizer, tmp_path / "m")
    sha = file_sha256(mdir / "model.safetensors")
    calls = []

    def counting_encode(*args, **kwargs):
        calls.append(len(args[1]))
        return encode_images(*args, **kwargs)

    cache = EmbeddingCache(tmp_path / "cache")
    kw = dict(dataset=ds.name, images=ds.images, manifest_sha256=ds.manifest_sha256, batch_size=5, encode=counting_encode)
    first = cached_image_features(cache, model, sha, **kw)
    second = cached_image_features(EmbeddingCache(tmp_path / "cache"), model, sha, **kw)
    assert calls == [len(ds)]  # encoded once, read back the second time
    assert np.array_equal(first, second)
    assert first.shape == (len(ds), model.cfg.embed_dim)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    # a different precision or checkpoint is a different entry
    cached_image_features(cache, model, sha, precision="bf16", **kw)
    cached_image_features(cache, model, "0" * 64, **kw)
    assert len(calls) == 3
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3


def test_batching_does_not_change_features(tmp_path, tiny_model, make_classification_dir) -> None:
    model, _ = tiny_model
    ds = load_eval_dataset(make_classification_dir(tmp_path, "c", per_class=2))
    a, b = encode_images(model, ds.images, batch_size=1), encode_images(model, ds.images, batch_size=7)
    assert torch.allclose(a, b, atol=1e-5)


def test_cache_key_depends_on_every_part() -> None:
    base = dict(dataset="d", split="all", checkpoint_sha256="a" * 64, transform={"image_size": 32}, precision="fp32")
    keys = {
        cache_key(**base),
        cache_key(**{**base, "dataset": "e"}),
        cache_key(**{**base, "split": "test"}),
        cache_key(**{**base, "checkpoint_sha256": "b" * 64}),
        cache_key(**{**base, "transform": {"image_size": 64}}),
        cache_key(**{**base, "precision": "bf16"}),
        cache_key(**base, manifest_sha256="x"),
    }
    assert len(keys) == 7
    assert cache_key(**base) == cache_key(**base)


def test_model_preprocess_drives_the_eval_transform_and_the_cache_key(tiny_model, eval_root) -> None:
    """A model carrying a non-default preprocess (open_clip's preprocess_cfg) is encoded with it, and keyed by it."""
    from clip_core.transforms import PreprocessConfig, preprocess_transform
    from components.evaluate.cache import encode_images, transform_spec

    model, _ = tiny_model
    images = sorted(str(p) for p in (eval_root / "colors" / "images").glob("*.png"))[:6]
    size = model.cfg.vision_cfg.image_size
    default_spec, default_feats = transform_spec(model), encode_images(model, images)
    try:
        model.preprocess = PreprocessConfig(size=size)  # the default: same key as a model without preprocess.json
        assert transform_spec(model) == default_spec
        half = PreprocessConfig(size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode="squash")
        model.preprocess = half
        assert transform_spec(model)["preprocess"]["resize_mode"] == "squash"
        got = encode_images(model, images)
        want = encode_images(model, images, preprocess_transform(half))
    finally:
        del model.preprocess
    assert torch.allclose(got, want) and not torch.allclose(got, default_feats, atol=1e-3)
