"""`data synth`: the embedded default dataset (seeded shapes + captions) as img2dataset shards and eval sets."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from importlib import resources

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from components.data.captions import caption, captions, sample_scene
from components.data.config import COLOURS, SHAPES, SynthConfig
from components.data.render import BACKGROUNDS, SHIFT_STYLES, Scene, render
from components.data.storage import atomic_dir, join, tar_bytes, write_bytes

# random streams: one per split so adding eval images never changes training data
TRAIN, SHAPE, COLOUR, COMPOSITIONAL, SKETCH, RETRIEVAL, BIAS, PLANTED = range(8)
TRANSFORMS = ("resize", "jpeg", "crop", "colour_jitter")


@dataclass(frozen=True)
class SynthResult:
    """What `build_synth` wrote."""

    root: str
    n_train: int
    n_shards: int
    eval_sets: dict[str, int]
    n_planted: int
    seconds: float


def _heldout(cfg: SynthConfig) -> frozenset[tuple[str, str]]:
    return frozenset(tuple(p.split()) for p in cfg.heldout_pairs)  # type: ignore[misc]


def train_sample(cfg: SynthConfig, i: int) -> tuple[Scene, str]:
    """Scene and caption of training sample `i` (a pure function of seed and index)."""
    rng = np.random.default_rng([cfg.seed, TRAIN, i])
    scene = sample_scene(rng, _heldout(cfg), background_bias=cfg.background_bias)
    return scene, caption(scene, rng)


def encode(img: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """PNG or JPEG bytes of an RGB uint8 array."""
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    else:
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _write_train_shard(args: tuple[SynthConfig, str, int]) -> int:
    cfg, train_dir, shard = args
    ext = cfg.image_format
    start, stop = shard * cfg.samples_per_shard, min(cfg.n_train, (shard + 1) * cfg.samples_per_shard)
    members, rows = [], []
    for i in range(start, stop):
        scene, text = train_sample(cfg, i)
        data = encode(render(scene, cfg.image_size), ext, cfg.jpeg_quality)
        key = f"{i:09d}"
        meta = {
            "key": key, "caption": text, "url": f"synth://{cfg.seed}/{i}", "status": "success", "error_message": None,
            "width": cfg.image_size, "height": cfg.image_size,
            "original_width": cfg.image_size, "original_height": cfg.image_size,
            "sha256": hashlib.sha256(data).hexdigest(),
        }  # fmt: skip
        attrs = {k: getattr(scene, k) for k in ("shape", "colour", "size", "position", "background")}
        members += [
            (f"{key}.{ext}", data),
            (f"{key}.txt", text.encode()),
            (f"{key}.json", json.dumps({**meta, **attrs}).encode()),
        ]
        rows.append(meta)
    name = f"shard-{shard:06d}"
    write_bytes(join(train_dir, f"{name}.tar"), tar_bytes(members))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    write_bytes(join(train_dir, f"{name}.parquet"), buf.getvalue())
    stats = {
        "count": len(rows), "successes": len(rows), "failed_to_download": 0, "failed_to_resize": 0,
        "status_dict": {"success": len(rows)}, "generator": "clip-pipeline data synth",
    }  # fmt: skip
    write_bytes(join(train_dir, f"{name}_stats.json"), json.dumps(stats, indent=2).encode())
    return len(rows)


def synth_is_current(out_dir: str, cfg: SynthConfig) -> bool:
    """True when `out_dir` already holds the dataset these settings generate (generation is deterministic)."""
    try:
        with fsspec.open(join(out_dir, "synth_config.json"), "r") as f:
            return json.load(f) == json.loads(json.dumps(_recorded(cfg)))
    except (FileNotFoundError, json.JSONDecodeError):
        return False


# Bump when the rendering changes, so data/raw made by older code is not taken as current.
# 2: backgrounds carry a unique smooth mottle (render.mottle): no chance pixel look-alikes.
GENERATOR_VERSION = 2


def _recorded(cfg: SynthConfig) -> dict:
    return {**{k: v for k, v in asdict(cfg).items() if k != "num_workers"}, "generator_version": GENERATOR_VERSION}


def build_synth(out_dir: str, cfg: SynthConfig) -> SynthResult:
    """Write the default dataset to `out_dir` (normally data/raw): train/ shards, eval/<name>/, planted_duplicates.csv."""
    t0 = time.perf_counter()
    n_shards = -(-cfg.n_train // cfg.samples_per_shard)
    with atomic_dir(out_dir) as tmp:
        jobs = [(cfg, join(tmp, "train"), s) for s in range(n_shards)]
        if cfg.num_workers > 1 and n_shards > 1:
            ctx = mp.get_context("forkserver")  # fork is unsafe when the caller holds threads (Prefect, Ray)
            ctx.set_forkserver_preload(["components.data.synth"])
            with ctx.Pool(min(cfg.num_workers, n_shards)) as pool:
                n = sum(pool.imap_unordered(_write_train_shard, jobs))
        else:
            n = sum(map(_write_train_shard, jobs))
        sets, planted = build_eval_sets(cfg)
        for name, es in sets.items():
            es.write(join(tmp, "eval", name))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["eval_dataset", "eval_image", "train_key", "transform"])
        w.writerows(planted)
        write_bytes(join(tmp, "planted_duplicates.csv"), buf.getvalue().encode())
        write_bytes(
            join(tmp, "synth_config.json"),
            json.dumps(_recorded(cfg), indent=2).encode(),
        )
    return SynthResult(out_dir, n, n_shards, {k: len(v.rows) for k, v in sets.items()}, len(planted), time.perf_counter() - t0)


def _templates(name: str) -> list[str]:
    text = resources.files("components.data").joinpath(f"{name}_templates.txt").read_text()
    return [t for t in text.splitlines() if t.strip()]


@dataclass
class EvalSet:
    """An evaluation dataset in the shared directory format (manifest.csv, classnames.txt, templates.txt, dataset.json)."""

    name: str
    task: str
    classnames: list[str]
    templates: list[str]
    shift_of: str | None = None
    extra: dict | None = None

    def __post_init__(self) -> None:
        self.rows: list[dict] = []
        self.images: list[bytes] = []

    def add(self, data: bytes, ext: str, **cols: object) -> str:
        """Add an image with its manifest columns; returns its relative path."""
        rel = f"images/{len(self.rows):06d}.{ext}"
        self.rows.append({"image": rel, "key": f"{self.name}-{len(self.rows):06d}", **cols})
        self.images.append(data)
        return rel

    def write(self, url: str) -> None:
        """Write the directory (fsspec URL)."""
        for row, data in zip(self.rows, self.images):
            write_bytes(join(url, row["image"]), data)
        cols = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        write_bytes(join(url, "manifest.csv"), buf.getvalue().encode())
        if self.classnames:
            write_bytes(join(url, "classnames.txt"), ("\n".join(self.classnames) + "\n").encode())
        if self.templates:
            write_bytes(join(url, "templates.txt"), ("\n".join(self.templates) + "\n").encode())
        info = {"name": self.name, "task": self.task, "shift_of": self.shift_of, "n": len(self.rows), **(self.extra or {})}
        write_bytes(join(url, "dataset.json"), json.dumps(info, indent=2).encode())


def build_eval_sets(cfg: SynthConfig) -> tuple[dict[str, EvalSet], list[tuple[str, str, str, str]]]:
    """All evaluation sets in memory (a few thousand small images) plus the planted-duplicate ground truth."""
    held, size, n = _heldout(cfg), cfg.image_size, cfg.n_eval_per_class
    combos = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    pref = {s: BACKGROUNDS[i % len(BACKGROUNDS)] for i, s in enumerate(SHAPES)}
    sets = {
        "shape": EvalSet("shape", "classification", list(SHAPES), _templates("shape")),
        "colour": EvalSet("colour", "classification", list(COLOURS), _templates("colour")),
        "shape_compositional": EvalSet(
            "shape_compositional", "classification", combos, _templates("combo"),
            extra={"heldout_pairs": list(cfg.heldout_pairs), "note": "classes: colour+shape pairs"},
        ),
        "shape_sketch": EvalSet("shape_sketch", "classification", list(SHAPES), _templates("shape"), shift_of="shape"),
        "retrieval": EvalSet("retrieval", "retrieval", [], []),
        "bias_probe": EvalSet(
            "bias_probe", "classification", list(SHAPES), _templates("shape"),
            extra={"train_preferred_background": pref, "background_bias": cfg.background_bias},
        ),
    }  # fmt: skip
    png = lambda sc: encode(render(sc, size), "png")  # noqa: E731
    for k, shp in enumerate(SHAPES):
        for j in range(n):
            rng = np.random.default_rng([cfg.seed, SHAPE, k, j])
            sets["shape"].add(png(sample_scene(rng, held, shape=shp)), "png", label=k)
            rng = np.random.default_rng([cfg.seed, SKETCH, k, j])
            style = SHIFT_STYLES[j % len(SHIFT_STYLES)]
            sets["shape_sketch"].add(png(sample_scene(rng, held, shape=shp, style=style)), "png", label=k, group_style=style)
            rng = np.random.default_rng([cfg.seed, BIAS, k, j])
            sc = sample_scene(rng, held, shape=shp, background=BACKGROUNDS[j % len(BACKGROUNDS)])
            sets["bias_probe"].add(png(sc), "png", label=k, group_background=sc.background, group_size=sc.size)
    for k, col in enumerate(COLOURS):
        for j in range(n):
            rng = np.random.default_rng([cfg.seed, COLOUR, k, j])
            sets["colour"].add(png(sample_scene(rng, held, colour=col)), "png", label=k)
    seen = [p for p in combos if tuple(p.split()) not in held]
    for h, pair in enumerate(cfg.heldout_pairs):
        for j in range(cfg.n_compositional_per_pair):
            rng = np.random.default_rng([cfg.seed, COMPOSITIONAL, h, j])
            col, shp = pair.split()
            sc = sample_scene(rng, frozenset(), shape=shp, colour=col)
            sets["shape_compositional"].add(png(sc), "png", label=combos.index(pair), group_combo="heldout")
            col, shp = seen[rng.integers(len(seen))].split()
            sc = sample_scene(rng, held, shape=shp, colour=col)
            sets["shape_compositional"].add(png(sc), "png", label=combos.index(f"{col} {shp}"), group_combo="seen")
    for j in range(cfg.n_retrieval):
        rng = np.random.default_rng([cfg.seed, RETRIEVAL, j])
        sc = sample_scene(rng, held)
        sets["retrieval"].add(png(sc), "png", captions=json.dumps(captions(sc, rng, int(rng.integers(2, 6)))))
    return sets, plant_duplicates(cfg, sets)


def plant_duplicates(cfg: SynthConfig, sets: dict[str, EvalSet]) -> list[tuple[str, str, str, str]]:
    """Append transformed copies of training images to shape/colour/retrieval; returns the ground-truth rows."""
    rng = np.random.default_rng([cfg.seed, PLANTED])
    picks = np.sort(rng.choice(cfg.n_train, size=cfg.n_planted_duplicates, replace=False))
    truth = []
    for t, i in enumerate(picks.tolist()):
        scene, text = train_sample(cfg, i)
        img = Image.fromarray(render(scene, cfg.image_size))
        transform = TRANSFORMS[t % len(TRANSFORMS)]
        data, ext = _transform(img, transform, rng)
        target = ("shape", "colour", "retrieval")[t % 3]
        if target == "shape":
            rel = sets[target].add(data, ext, label=SHAPES.index(scene.shape))
        elif target == "colour":
            rel = sets[target].add(data, ext, label=COLOURS.index(scene.colour))
        else:
            rel = sets[target].add(data, ext, captions=json.dumps([text, *captions(scene, rng, 1)]))
        truth.append((target, rel, f"{i:09d}", transform))
    return truth


def _transform(img: Image.Image, kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    s = img.size[0]
    if kind == "resize":
        img = img.resize((s * 5 // 4, s * 5 // 4), Image.Resampling.BICUBIC)
    elif kind == "crop":
        m = max(1, s // 16)
        left, top = int(rng.integers(0, m + 1)), int(rng.integers(0, m + 1))
        img = img.crop((left, top, s - (m - left), s - (m - top))).resize((s, s), Image.Resampling.BICUBIC)
    elif kind == "colour_jitter":
        arr = np.asarray(img, np.float32) * rng.uniform(1.05, 1.15) + rng.uniform(-8, 8, size=3)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if kind == "jpeg":
        return encode(np.asarray(img), "jpg", quality=70), "jpg"
    return encode(np.asarray(img), "png"), "png"
