"""Every eval format reads to the same EvalDataset: same images, labels, splits -> same features and metrics."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from components.evaluate.cache import EmbeddingCache, cached_image_features, valid_rows
from components.evaluate.config import EvaluateConfig
from components.evaluate.readers import detect_format, load_dataset_spec
from components.evaluate.suite import evaluate_model
from components.evaluate.zeroshot import average_precision_per_class, build_classifier, multilabel_metrics, zeroshot_logits

FAST = dict(
    device="cpu", progress=False, batch_size=8, probe_c_steps=13, probe_c_init_steps=7, probe_max_iter=200,
    tasks=("zeroshot_classification", "linear_probe"),
)  # fmt: skip


def _specs(paths):
    return {
        "manifest": f"manifest:{paths['manifest']}",
        "wds": str(paths["wds"]),  # detected
        "imagefolder": str(paths["imagefolder"]),  # detected
        "torchvision": f"torchvision:CIFAR10:{paths['cifar']}",
    }


def test_every_reader_gives_the_same_dataset_and_features(formats, tmp_path, tiny_model, trust_cifar_files) -> None:
    paths = formats.write_all(tmp_path)
    assert detect_format(str(paths["wds"])) == "wds" and detect_format(str(paths["imagefolder"])) == "imagefolder"
    assert detect_format(str(paths["manifest"])) == "manifest"
    model = tiny_model[0]
    got = {}
    for fmt, spec in _specs(paths).items():
        ds = load_dataset_spec(spec, name=fmt)
        feats = cached_image_features(EmbeddingCache(tmp_path / "cache"), model, "0" * 64, ds.name, ds.image_source(),
                                      manifest_sha256=ds.fingerprint, batch_size=8)  # fmt: skip
        order = np.lexsort((ds.labels, ds.split))  # test rows first for every format; class-major within a split
        got[fmt] = (ds, feats[order], ds.labels[order], ds.split[order])
        assert ds.fingerprint and ds.format == fmt and len(ds) == 24 and valid_rows(feats).all()
        assert ds.classnames == ["blue", "cyan", "green"] and len(ds.templates) == 18  # CIFAR-10's prompts
    _, ref_feats, ref_labels, ref_split = got["manifest"]
    for fmt, (_, feats, labels, split) in got.items():
        np.testing.assert_allclose(feats, ref_feats, atol=1e-5, err_msg=fmt)  # identical pixels, identical features
        assert (labels == ref_labels).all() and (split == ref_split).all(), fmt
    assert got["wds"][0].eval_split == "test" and got["manifest"][0].eval_split is None


def test_every_reader_gives_the_same_metrics(formats, tmp_path, model_dir, trust_cifar_files) -> None:
    paths = formats.write_all(tmp_path)
    specs = _specs(paths)
    out = tmp_path / "out"
    cfg = EvaluateConfig(**FAST, datasets=tuple({k: v} for k, v in specs.items()))
    res = evaluate_model(model_dir, tmp_path / "no-eval-root", out, cfg)
    by = {(r["dataset"], r["task"]): r for r in res.records}
    # the manifest has no notion of a test split for zero-shot: score it on its test rows by hand for the comparison
    for task in ("zeroshot_classification", "linear_probe"):
        ref = by[("wds", task)]["metrics"]
        for fmt in ("imagefolder", "torchvision"):
            assert by[(fmt, task)]["metrics"] == pytest.approx(ref, abs=1e-6), (fmt, task)
    assert by[("wds", "zeroshot_classification")]["n_images"] == 12  # the test split only, as CLIP_benchmark scores
    assert by[("manifest", "zeroshot_classification")]["n_images"] == 24  # manifests: every row, as before
    assert by[("manifest", "linear_probe")]["metrics"] == pytest.approx(by[("wds", "linear_probe")]["metrics"], abs=1e-6)
    csv = (out / "benchmark.csv").read_text().splitlines()
    assert csv[0].startswith("dataset,model,pretrained,task,language,model_fullname,acc1,acc5,mean_per_class_recall")
    assert len(csv) == 1 + 8
    run = json.loads((out / "run.json").read_text())
    assert run["datasets"]["torchvision"]["format"] == "torchvision"


def test_manifest_zeroshot_equals_the_other_readers_on_the_same_rows(formats, tmp_path, tiny_model, trust_cifar_files) -> None:
    paths = formats.write_all(tmp_path)
    model, tokenizer = tiny_model
    man = load_dataset_spec(f"manifest:{paths['manifest']}")
    test_only = dataclasses.replace(man, eval_split="test")  # what the split formats do
    wds = load_dataset_spec(str(paths["wds"]))
    clf = build_classifier(model, tokenizer, man.classnames, man.templates)
    accs = []
    for ds in (test_only, wds):
        feats = cached_image_features(EmbeddingCache(tmp_path / "c"), model, "0" * 64, ds.name, ds.image_source(), batch_size=8)
        rows = ds.eval_rows()
        accs.append(zeroshot_logits(feats[rows], clf).argmax(1).eq(torch.as_tensor(ds.labels[rows])).float().mean().item())
    assert accs[0] == accs[1]


def test_without_train_split_and_carved_probe(formats, tmp_path, trust_cifar_files) -> None:
    paths = formats.write_all(tmp_path)
    for spec in (str(paths["wds"]), str(paths["imagefolder"]), f"torchvision:cifar10:{paths['cifar']}"):
        ds = load_dataset_spec(spec, with_train=False)
        assert len(ds) == 12 and set(ds.split) == {"test"}, spec


def test_corrupt_images_are_counted_and_reported(formats, tmp_path, model_dir, caplog) -> None:
    paths = formats.write_all(tmp_path)
    (paths["manifest"] / "images" / "test_blue_0.png").write_bytes(b"not a png")
    tar = paths["wds"] / "test" / "0.tar"
    ok = (paths["manifest"] / "images" / "test_cyan_1.png").read_bytes()
    bad = [("bad.png", b"\x89PNG broken"), ("bad.cls", b"0"), ("ok.png", ok), ("ok.cls", b"1"), ("nolabelimage.cls", b"2")]
    formats.write_tar(tar, bad)
    sets = ({"m": str(paths["manifest"])}, {"w": str(paths["wds"])})
    cfg = EvaluateConfig(**{**FAST, "tasks": ("zeroshot_classification",)}, datasets=sets)
    with caplog.at_level("WARNING"):
        res = evaluate_model(model_dir, tmp_path, tmp_path / "out", cfg)
    by = {r["dataset"]: r for r in res.records}
    assert by["m"]["n_corrupt"] == 1 and by["m"]["n_images"] == 23
    assert by["w"]["n_corrupt"] == 2 and by["w"]["n_images"] == 1 + 6  # bad.png undecodable, nolabelimage has no image
    assert "test_blue_0.png" in caplog.text and "unreadable image" in caplog.text and "no image member" in caplog.text
    assert "n_corrupt" in (tmp_path / "out" / "benchmark.csv").read_text().splitlines()[0]


def _wds(formats, tmp_path, dataset_type=None, labels=(b"0", b"1"), nshards="1", classnames="a\nb\n"):
    d = tmp_path / "w"
    png = formats.png(np.zeros((8, 8, 3), np.uint8))
    members = [
        m
        for i, y in enumerate(labels)
        for m in ((f"s{i}.png", png), (f"s{i}.{dataset_type[1]}" if dataset_type else f"s{i}.cls", y))
    ]
    formats.write_tar(d / "test" / "0.tar", members)
    if nshards is not None:
        (d / "test" / "nshards.txt").write_text(nshards)
    if classnames is not None:
        (d / "classnames.txt").write_text(classnames)
    if dataset_type:
        (d / "dataset_type.txt").write_text(dataset_type[0])
    return d


def test_bad_input_errors_name_the_file_and_the_fix(formats, tmp_path, trust_cifar_files) -> None:
    with pytest.raises(FileNotFoundError, match=r"w/test/nshards.txt: missing"):
        load_dataset_spec(f"wds:{_wds(formats, tmp_path, nshards=None)}")
    with pytest.raises(ValueError, match=r"0.tar: sample 's1': label 7 outside \[0, 2\)"):
        load_dataset_spec(f"wds:{_wds(formats, tmp_path / 'l', labels=(b'0', b'7'))}")
    with pytest.raises(ValueError, match=r"w/test: no samples"):
        load_dataset_spec(f"wds:{_wds(formats, tmp_path / 'e', labels=())}")
    with pytest.raises(FileNotFoundError, match=r"classnames.txt: missing"):
        load_dataset_spec(f"wds:{_wds(formats, tmp_path / 'c', classnames=None)}")
    with pytest.raises(ValueError, match=r"unknown dataset; supported: .*CIFAR10"):
        load_dataset_spec(f"torchvision:CIFAR11:{tmp_path}")
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/\{data_batch_1..5.*Nothing is downloaded"):
        load_dataset_spec(f"torchvision:CIFAR10:{tmp_path / 'nothing'}")
    (tmp_path / "empty" / "test" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"empty/test: no images"):
        load_dataset_spec(f"imagefolder:{tmp_path / 'empty'}")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match=r"cannot tell the dataset format.*`wds:"):
        load_dataset_spec(str(tmp_path / "flat"))
    with pytest.raises(ValueError, match=r"torchvision:NAME:ROOT"):
        load_dataset_spec("torchvision:CIFAR10")


def test_wds_reads_through_fsspec_memory(formats, tmp_path, tiny_model) -> None:
    import fsspec

    paths = formats.write_all(tmp_path)
    fs = fsspec.filesystem("memory")
    for f in sorted(paths["wds"].rglob("*")):
        if f.is_file():
            fs.pipe(f"/evalsets/wds/{f.relative_to(paths['wds']).as_posix()}", f.read_bytes())
    remote, local = load_dataset_spec("memory://evalsets/wds"), load_dataset_spec(str(paths["wds"]))
    assert remote.format == "wds" and remote.fingerprint == local.fingerprint and (remote.labels == local.labels).all()
    feats = [cached_image_features(EmbeddingCache(tmp_path / n), tiny_model[0], "0" * 64, "w", d.image_source(), batch_size=8)
             for n, d in (("a", remote), ("b", local))]  # fmt: skip
    np.testing.assert_array_equal(feats[0], feats[1])


def test_multilabel_average_precision_known_answer() -> None:
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.3, 0.1], [0.1, 0.6]])
    targets = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 0]])
    # class 0 ranks truth [1, 0, 1, 0]: precisions 1/1 and 2/3 at its positives; class 1 ranks its one positive first
    assert average_precision_per_class(scores, targets).tolist() == pytest.approx([(1 + 2 / 3) / 2, 1.0])
    assert multilabel_metrics(scores, targets.numpy())["mean_average_precision"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


def test_multilabel_and_retrieval_wds_sets_run_end_to_end(formats, tmp_path, model_dir, tiny_model) -> None:
    import io

    vec = [io.BytesIO() for _ in range(3)]
    for b, v in zip(vec, ([1, 0], [1, 1], [0, 1])):
        np.save(b, np.array(v, np.float32))
    ml = _wds(formats, tmp_path / "ml", ("multilabel", "npy"), labels=[b.getvalue() for b in vec])
    rt = _wds(formats, tmp_path / "rt", ("retrieval", "txt"), labels=(b"a dark square\nblack", b"night"), classnames=None)
    cfg = EvaluateConfig(**{**FAST, "tasks": ("zeroshot_classification", "zeroshot_retrieval")},
                         datasets=({"ml": f"wds:{ml}"}, {"rt": f"wds:{rt}"}))  # fmt: skip
    res = evaluate_model(model_dir, tmp_path, tmp_path / "out", cfg)
    by = {r["dataset"]: r for r in res.records}
    ds = load_dataset_spec(f"wds:{ml}")
    feats = cached_image_features(EmbeddingCache(tmp_path / "c"), tiny_model[0], "0" * 64, "ml", ds.image_source())
    clf = build_classifier(*tiny_model, ds.classnames, ds.templates)
    assert by["ml"]["task"] == "zeroshot_classification"
    assert by["ml"]["metrics"] == pytest.approx(multilabel_metrics(zeroshot_logits(feats, clf), ds.targets))
    assert by["rt"]["task"] == "zeroshot_retrieval" and by["rt"]["n_texts"] == 3
    assert "mean_average_precision" in (tmp_path / "out" / "benchmark.csv").read_text().splitlines()[0]


def test_wds_streams_by_shard_across_workers_in_row_order(formats, tmp_path, tiny_model) -> None:
    from components.evaluate.cache import encode_images

    ds = load_dataset_spec(str(formats.write_all(tmp_path)["wds"]))  # 4 shards: each worker takes every other one
    one = encode_images(tiny_model[0], ds.image_source(), batch_size=5)
    two = encode_images(tiny_model[0], ds.image_source(), batch_size=5, num_workers=2)
    torch.testing.assert_close(one, two)


class _RunsCode:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_batches_that_would_build_objects_are_refused(formats, tmp_path, trust_cifar_files) -> None:
    """torchvision unpickles CIFAR batches; here only numpy arrays, lists and bytes may come out of them."""
    import pickle
    import shutil

    root = tmp_path / "cifar"
    shutil.copytree(formats.write_all(tmp_path / "all")["cifar"], root)
    batch = root / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(batch.read_bytes())
    entry["labels"] = [_RunsCode()] * len(entry["labels"])
    batch.write_bytes(pickle.dumps(entry))
    # `print` pickles by its qualified name: builtins.print, or Ray's safe_print once Ray Data ran in this process
    with pytest.raises(ValueError, match=r"refused [\w.]*print: a CIFAR batch file holds only numpy arrays"):
        load_dataset_spec(f"torchvision:CIFAR10:{root}")


def test_manifest_columns_are_kept_as_written(tmp_path) -> None:
    """Probes read group columns from the one manifest reader: text as written, empty cells as "" (not NaN, not 1.0)."""
    from PIL import Image

    from components.evaluate.dataset import load_eval_dataset

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "manifest.csv").write_text("image,label,group_age\na.png,0,07\na.png,0,\n")
    (tmp_path / "classnames.txt").write_text("thing\n")
    ds = load_eval_dataset(tmp_path)
    assert ds.columns == {"image": ["a.png", "a.png"], "label": ["0", "0"], "group_age": ["07", ""]}
    assert ds.labels.tolist() == [0, 0]
