"""data.engine ray vs local: the dedup/overlap image features and the image-tower encoding are the same on Ray Data."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.audit.shards import shard_features


def write_shards(root: Path, n_shards: int = 3, per_shard: int = 6, seed: int = 0) -> pd.DataFrame:
    """Webdataset shards of random images (varied sizes, PNG and JPEG) and their metadata rows (key, shard)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = []
    for s in range(n_shards):
        name = f"{s:05d}.tar"
        with tarfile.open(root / name, "w") as tar:
            for j in range(per_shard):
                key, (h, w) = f"{s:03d}{j:03d}", rng.integers(20, 90, 2)
                img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((int(w), int(h)))
                buf, ext = io.BytesIO(), ("png", "jpg")[j % 2]
                img.save(buf, format="PNG" if ext == "png" else "JPEG")
                for member, data in ((f"{key}.{ext}", buf.getvalue()), (f"{key}.txt", b"a caption")):
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rows.append({"key": key, "shard": name})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)  # not in shard order


@pytest.mark.timeout(120)
def test_shard_features_ray_equals_local(tmp_path, local_ray) -> None:
    meta = write_shards(tmp_path / "shards")
    local = shard_features(str(tmp_path / "shards"), meta, 64)  # verify_method orb's thumbnails
    ray = shard_features(str(tmp_path / "shards"), meta, 64, engine="ray")
    assert local[0].shape == (len(meta), 192) and local[1].shape == (len(meta), 64, 64, 3)
    assert np.abs(local[0]).sum(1).min() > 0  # every row filled
    np.testing.assert_array_equal(ray[0], local[0])
    np.testing.assert_array_equal(ray[1], local[1])
    missing = pd.concat([meta, pd.DataFrame([{"key": "nope", "shard": "00001.tar"}])], ignore_index=True)
    with pytest.raises(ValueError, match=r"1 images of metadata\.parquet not in their shards"):
        shard_features(str(tmp_path / "shards"), missing, 32, engine="ray")


def test_encode_ray_fills_the_local_cache_entry(tmp_path, local_ray) -> None:
    """Indexed (manifest, one unreadable image) and streamed (wds, 2 shards) sources: same cache file, same rows."""
    import functools

    from components.evaluate.cache import EmbeddingCache, cached_image_features
    from components.evaluate.ray_encoder import encode_images_ray
    from components.evaluate.readers import load_dataset_spec
    from tests.components.evaluate.conftest import build_tiny_model, write_all_formats

    model = build_tiny_model(0)[0]
    paths = write_all_formats(tmp_path / "sets", n_classes=3, per_class=4)
    (paths["manifest"] / "images" / "test_blue_1.png").write_bytes(b"not a png")  # NaN row on both paths
    ray_encode = functools.partial(encode_images_ray, device="auto", actors=1)
    for name in ("manifest", "wds"):
        ds = load_dataset_spec(str(paths[name]))
        caches = {e: EmbeddingCache(tmp_path / f"{name}-{e}") for e in ("local", "ray")}
        local = cached_image_features(caches["local"], model, "0" * 64, name, ds.image_source(), batch_size=5)
        ray = cached_image_features(caches["ray"], model, "0" * 64, name, ds.image_source(), batch_size=5, encode=ray_encode)
        assert [p.name for p in caches["ray"].root.iterdir()] == [p.name for p in caches["local"].root.iterdir()]
        assert ray.shape == local.shape == (len(ds), model.cfg.embed_dim)
        np.testing.assert_array_equal(np.isnan(ray), np.isnan(local))
        np.testing.assert_allclose(ray, local, atol=1e-5, equal_nan=True)
        assert np.isnan(local).any(axis=1).sum() == (1 if name == "manifest" else 0)


def test_actor_plan_gpu_when_allowed_and_present(monkeypatch) -> None:
    """(device, pool, CPUs per actor) from evaluate.device and the cluster's resources (no Ray needed)."""
    import ray

    from components.evaluate.ray_encoder import actor_plan

    def plan(res: dict, device: str, actors: int | None = None) -> tuple[str, int, int]:
        monkeypatch.setattr(ray, "cluster_resources", lambda: res)
        return actor_plan(device, actors)

    assert plan({"CPU": 16.0, "GPU": 2.0}, "auto") == ("cuda", 2, 1)
    assert plan({"CPU": 16.0, "GPU": 2.0}, "cuda", actors=5) == ("cuda", 2, 1)  # never more GPU actors than GPUs
    assert plan({"CPU": 1.0, "GPU": 1.0}, "auto") == ("cuda", 1, 0)  # the decode tasks keep the CPU
    assert plan({"CPU": 16.0, "GPU": 2.0}, "cpu") == ("cpu", 4, 4)
    assert plan({"CPU": 8.0}, "auto") == ("cpu", 2, 4)
    assert plan({"CPU": 2.0}, "auto", actors=2) == ("cpu", 2, 1)
    with pytest.raises(ValueError, match="no GPU"):
        plan({"CPU": 8.0}, "cuda")
