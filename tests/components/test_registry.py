import datetime as dt

import pytest

from components.registry import RegistryConfig, load_registry, register_model

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("root", ["file", "memory"])
def test_champion_challenger_gate(tmp_path, root: str) -> None:
    url = str(tmp_path / "reg.json") if root == "file" else "memory://reg-test/registry.json"
    cfg = RegistryConfig(metric="acc", min_gain=0.01)
    d1 = register_model(url, "m1", {"acc": 0.50}, cfg, data_version="d1", git_revision="g1", now=T0)
    assert d1.promoted and d1.version == 1
    d2 = register_model(url, "m2", {"acc": 0.505}, cfg, now=T0)  # better, but by less than min_gain
    assert not d2.promoted and "kept champion" in d2.reason
    d3 = register_model(url, "m3", {"acc": 0.40}, cfg, now=T0)  # worse: never replaces a better model
    assert not d3.promoted
    d4 = register_model(url, "m4", {"acc": 0.60}, cfg, now=T0)
    assert d4.promoted
    reg = load_registry(url)
    assert reg["champion"]["model"] == "m4" and [e["version"] for e in reg["entries"]] == [1, 2, 3, 4]
    assert reg["entries"][0]["data_version"] == "d1" and reg["entries"][0]["git_revision"] == "g1"


def test_lower_is_better_and_missing_metric(tmp_path) -> None:
    url = str(tmp_path / "r.json")
    cfg = RegistryConfig(metric="loss", higher_is_better=False)
    register_model(url, "a", {"loss": 1.0}, cfg)
    assert register_model(url, "b", {"loss": 0.9}, cfg).promoted
    assert not register_model(url, "c", {"loss": 0.9}, cfg).promoted  # a tie keeps the champion
    with pytest.raises(KeyError, match="not among the evaluation metrics"):
        register_model(url, "d", {"acc": 1.0}, cfg)
    with pytest.raises(ValueError, match="min_gain"):
        RegistryConfig(min_gain=-1)


def test_training_record_data_line_and_champion_archive(tmp_path) -> None:
    model = tmp_path / "train" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights v1")
    url = str(tmp_path / "registry" / "registry.json")
    t1 = {"data_version": "sha256:a:1200rows", "init_from": "scratch", "n_samples": 1200, "sources": {"s0.tar": 1200}}
    d1 = register_model(url, str(model), {"m": 0.5}, RegistryConfig(metric="m"), training=t1, archive=True)
    assert d1.data == "trained on 1200 samples (data sha256:a:1200rows) from scratch"
    champion = load_registry(url)["champion"]
    assert champion["model"].endswith("models/v1") and champion["trained_at"] == str(model)
    (model / "model.safetensors").write_bytes(b"weights v2")  # the next training run overwrites OUT/train/model
    assert (tmp_path / "registry" / "models" / "v1" / "model.safetensors").read_bytes() == b"weights v1"
    t2 = {**t1, "data_version": "sha256:b:1500rows", "n_samples": 1500, "sources": {"s0.tar": 1200, "dl2.tar": 300}}
    d2 = register_model(url, str(model), {"m": 0.4}, RegistryConfig(metric="m"), training=t2, archive=True)
    assert not d2.promoted and not (tmp_path / "registry" / "models" / "v2").exists()
    line = "data sha256:a:1200rows -> sha256:b:1500rows: 1200 -> 1500 samples, +300 from 1 new source(s); trained from scratch"
    assert d2.data == line
    assert load_registry(url)["entries"][1]["training"] == t2


# A registering process whose read-modify-write is slowed (50 ms between reading the registry and writing it), so
# two of them at once overlap on every entry: without the registry lock, entries are lost for certain.
WRITER = """
import sys, time
from pathlib import Path
import components.registry as r

url, name, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
load = r.load_registry
def slow_load(u):
    reg = load(u)
    time.sleep(0.05)
    return reg
r.load_registry = slow_load
while not go.exists():
    time.sleep(0.01)
for i in range(n):
    r.register_model(url, f"{name}-{i}", {"acc": 0.5}, r.RegistryConfig(metric="acc"))
"""


def test_two_concurrent_writers_keep_every_entry(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    url, go, n = str(tmp_path / "registry" / "registry.json"), tmp_path / "go", 8
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(n), str(go)], env=env) for name in "ab"]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    entries = load_registry(url)["entries"]
    assert sorted(e["model"] for e in entries) == sorted(f"{x}-{i}" for x in "ab" for i in range(n))
    assert [e["version"] for e in entries] == list(range(1, 2 * n + 1))
