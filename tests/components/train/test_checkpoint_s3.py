"""CheckpointStore on S3 (moto on loopback): commit, verify, set aside; s3fs cannot `mv` a prefix recursively."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.train.checkpoint import CheckpointStore

pytestmark = pytest.mark.faults


@pytest.fixture()
def s3(monkeypatch):
    import fsspec
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in {**env, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("ckpt-bucket")
    yield fs
    fsspec.filesystem("s3").clear_instance_cache()
    server.stop()


def test_commit_verify_and_set_aside_on_s3(s3, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"w" * 100)
    (tmp_path / "sub" / "rank0.pt").write_bytes(b"r" * 10)
    (tmp_path / "train_meta.json").write_text('{"config": {"lr": 0.1}}')
    store = CheckpointStore("s3://ckpt-bucket/run/train")
    store.upload(tmp_path, 8)
    info = store.commit(8, {"metric": 1.0})
    assert info.url == "s3://ckpt-bucket/run/train/checkpoints/step-00000008"
    s3.invalidate_cache()
    assert sorted(info.meta["files"]) == ["sub/rank0.pt", "train_meta.json", "weights.bin"]
    assert store.latest_good().step == 8
    assert not [p for p in s3.find("ckpt-bucket") if ".tmp" in p]  # staging emptied
    moved = store.set_aside_if_incompatible({"lr": 0.2})
    s3.invalidate_cache()
    assert moved and s3.exists(f"{moved}/step-00000008/manifest.json") and store.list() == []
