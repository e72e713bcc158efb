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


def test_shard_features_ray_equals_local(tmp_path, local_ray) -> None:
    meta = write_shards(tmp_path / "shards")
    for size in (32, 64):  # verify_method pixel / orb thumbnails
        local = shard_features(str(tmp_path / "shards"), meta, size)
        ray = shard_features(str(tmp_path / "shards"), meta, size, engine="ray")
        assert local[0].shape == (len(meta), 192) and local[1].shape == (len(meta), size, size, 3)
        assert np.abs(local[0]).sum(1).min() > 0  # every row filled
        np.testing.assert_array_equal(ray[0], local[0])
        np.testing.assert_array_equal(ray[1], local[1])
    missing = pd.concat([meta, pd.DataFrame([{"key": "nope", "shard": "00001.tar"}])], ignore_index=True)
    with pytest.raises(ValueError, match="1 images of metadata.parquet not in their shards"):
        shard_features(str(tmp_path / "shards"), missing, 32, engine="ray")
