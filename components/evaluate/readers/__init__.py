"""Dataset specs (`[format:]PATH_OR_URL`) -> EvalDataset: detect the format, call that format's one reader.

Why specs: users bring data in the layouts other tools already wrote (CLIP_benchmark's webdataset
export, ImageFolder trees, torchvision downloads); each gets one small reader here, and everything
after it (cache, metrics, tables) sees the same EvalDataset.

    manifest:PATH            this project's manifest directory (manifest.csv, classnames.txt, ...)
    wds:PATH_OR_URL          CLIP_benchmark's webdataset layout (test/nshards.txt, test/0.tar, ...)
    imagefolder:PATH         PATH/<class>/*.jpg, or PATH/train/<class>/ + PATH/test/<class>/
    torchvision:NAME:ROOT    a torchvision dataset already on disk (never downloaded)

Without a prefix the format is detected from the files present (torchvision needs its prefix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from components.io import is_remote

from ..dataset import EvalDataset

FORMATS = ("manifest", "wds", "imagefolder", "torchvision")


def parse_spec(spec: str) -> tuple[str | None, str]:
    """`wds:s3://b/x` -> ("wds", "s3://b/x"); `s3://b/x` or `/data/x` -> (None, same)."""
    head, sep, rest = spec.partition(":")
    if sep and head in FORMATS:
        return head, rest
    return None, spec


def detect_format(url: str) -> str:
    """The format of what is at `url` (local path or fsspec URL), from the marker files present."""
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url)
    path = path.rstrip("/")
    if not fs.exists(path):
        raise FileNotFoundError(f"{url}: not found (a dataset spec is a directory path or URL, optionally `format:PATH`)")
    if fs.exists(f"{path}/manifest.csv"):
        return "manifest"
    if any(fs.exists(f"{path}/{s}/nshards.txt") for s in ("test", "train")) or fs.exists(
        f"{path}/zeroshot_classification_templates.txt"
    ):
        return "wds"
    if any(e["type"] == "directory" for e in fs.ls(path, detail=True)):
        return "imagefolder"
    raise ValueError(
        f"{url}: cannot tell the dataset format: no manifest.csv (manifest), no test/nshards.txt (CLIP_benchmark "
        "webdataset), no class folders (ImageFolder). Prefix the spec with the format, e.g. `wds:{url}`; torchvision "
        "datasets are `torchvision:NAME:ROOT`."
    )


def load_dataset_spec(spec: str, name: str | None = None, with_train: bool = True) -> EvalDataset:
    """Read the dataset a spec names. `with_train=False` skips a format's train split (only probes need it)."""
    fmt, rest = parse_spec(spec)
    if fmt == "torchvision":
        from .tvdatasets import load_torchvision

        tv_name, sep, root = rest.partition(":")
        if not sep or not tv_name or not root:
            raise ValueError(f"{spec!r}: expected torchvision:NAME:ROOT, e.g. torchvision:CIFAR10:/data/cifar")
        return load_torchvision(tv_name, root, name, with_train)
    fmt = fmt or detect_format(rest)
    if fmt == "manifest":
        from ..dataset import load_eval_dataset

        ds = load_eval_dataset(_local(rest, "manifest"))
        return ds if name is None else _renamed(ds, name)
    if fmt == "wds":
        from .wds import load_wds

        return load_wds(rest, name, with_train)
    from .imagefolder import load_imagefolder

    return load_imagefolder(_local(rest, "imagefolder"), name, with_train)


def _local(url: str, fmt: str) -> str:
    if is_remote(url):
        raise ValueError(
            f"{url}: the {fmt} reader reads local directories; copy it locally first, or export it as CLIP_benchmark's "
            "webdataset layout (`wds:` streams from any fsspec URL)"
        )
    return url.removeprefix("file://")


def _renamed(ds: EvalDataset, name: str) -> EvalDataset:
    import dataclasses

    return dataclasses.replace(ds, name=name)


def resolve_datasets(
    eval_root: str | Path, entries: Sequence[str | Mapping[str, str]] = (), with_train: bool = True
) -> list[EvalDataset]:
    """The eval sets of a run: every manifest directory under `eval_root` when `entries` is empty; else each entry,
    a `{name: spec}` mapping (any format) or a plain name (a manifest directory under `eval_root`), in order."""
    from ..dataset import discover_eval_datasets

    names = tuple(e for e in entries if isinstance(e, str))
    if not entries:
        return discover_eval_datasets(eval_root)
    by_name = {d.name: d for d in discover_eval_datasets(eval_root, names)} if names else {}
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(by_name[e])
        else:
            ((name, spec),) = e.items()
            out.append(load_dataset_spec(spec, name, with_train))
    seen = [d.name for d in out]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise ValueError(f"evaluate.datasets: names {dupes} appear twice; give each dataset its own name")
    return out
