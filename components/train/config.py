"""The `train` section: model, data, optimiser, precision, distribution and checkpoint settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ShardSource:
    """One training source of a weighted mixture: its shards and its share of the samples."""

    url: str  # URL/glob/brace pattern of webdataset shards
    weight: float  # relative share of the training samples drawn from this source (normalised over sources)

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("a train.shards source needs a url")
        if not self.weight > 0:
            raise ValueError(f"train.shards weight of {self.url!r} must be > 0, got {self.weight}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training stage reads. Only params change between a laptop and a GPU cluster."""

    model: str = "tiny"  # clip_core config name or JSON path
    tokenizer: str = "train-bpe"  # "train-bpe" (BPE trained on the captions) or path/URL of bpe_simple_vocab_16e6.txt.gz
    # URL/glob/brace pattern of webdataset shards ("" = OUT/ingest/shards/*.tar; open_clip's "a::b" joins sources),
    # or a weighted mixture: a list of {url, weight}, each source drawn with probability weight / sum(weights)
    shards: str | tuple[ShardSource, ...] = ""
    resampled: bool = False  # draw shards with replacement from a seeded RNG (open_clip's --dataset-resampled)
    batch_size: int = 64  # per worker, per micro-step
    steps: int = 300  # optimiser steps in total
    lr: float = 1e-3
    wd: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup: int = 30  # linear warm-up steps, then cosine decay to 0
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    accum_steps: int = 1  # micro-batches per optimiser step
    # contrastive: one loss over all accum_steps micro-batches (a truly larger batch, one extra forward each);
    # average: the mean of per-micro-batch losses (each sees only its own batch_size * workers negatives)
    accum_mode: Literal["contrastive", "average"] = "contrastive"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_checkpointing: bool = False
    patch_dropout: float = 0.0  # FLIP: fraction of image patches dropped in training (ViT only); 0 = off
    compile: bool = False  # torch.compile the model's training forward (both engines); checkpoints keep plain keys
    loss: Literal["clip", "siglip"] = "clip"
    local_loss: bool = False
    gather_with_grad: bool = False
    strategy: Literal["ddp", "deepspeed"] = "deepspeed"
    zero_stage: int = 2
    workers: int = 2
    min_workers: int = 0  # elastic (ddp only): after losing nodes, go on with >= min_workers; 0 = always `workers`
    cpus_per_worker: int = 1
    use_gpu: bool = False
    log_every: int = 10
    ckpt_every: int = 50  # also the length of one data "virtual epoch" (resume points)
    keep_last: int = 2
    eval_every: int = 0  # 0 disables the in-training zero-shot check
    eval_dataset: str = ""  # an eval directory (manifest.csv, classnames.txt, templates.txt)
    seed: int = 0
    num_data_workers: int = 1  # DataLoader worker processes per training worker
    shuffle_buffer: int = 500
    storage_path: str = ""  # any fsspec URL for checkpoints/metrics; "" = OUT/train
    max_failures: int = 2  # automatic restarts of the worker group after a crash
    tensorboard: bool = False
    # A run on new data never resumes a checkpoint of other data; it starts from scratch (""), from the
    # registry champion's weights ("champion") or from a model: a model directory (any fsspec URL) or anything
    # `clip-pipeline models import` reads (open_clip/OpenAI checkpoint, hub directory). The tokenizer comes with
    # the weights; optimiser and lr schedule restart at step 0.
    init_from: str = ""
    # Tower locking (open_clip's --lock-image/--lock-text): locked parameters get no gradient and no optimiser state
    lock_image: bool = False
    lock_image_unlocked_groups: int = 0  # the last N layer groups of the image tower stay trainable
    lock_image_freeze_bn_stats: bool = False  # ResNet towers: locked BatchNorm layers keep their running stats (eval mode)
    lock_text: bool = False
    lock_text_unlocked_layers: int = 0  # the last N layer groups of the text tower stay trainable

    def __post_init__(self) -> None:
        if not isinstance(self.shards, str):  # from params.yaml: ShardSources; from a worker's dict: plain dicts
            sources = tuple(s if isinstance(s, ShardSource) else ShardSource(**s) for s in self.shards)
            if not sources:
                raise ValueError('train.shards is an empty list; give a URL pattern, "" or a list of {url, weight}')
            object.__setattr__(self, "shards", sources)
        if not 0.0 <= self.patch_dropout < 1.0:
            raise ValueError(f"patch_dropout must be in [0, 1), got {self.patch_dropout}")
        positive = ("batch_size", "steps", "accum_steps", "workers", "cpus_per_worker", "log_every", "ckpt_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup ({self.warmup}) must be in [0, steps={self.steps})")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.precision == "fp16" and not self.use_gpu:
            raise ValueError("precision fp16 needs use_gpu: true (loss scaling on CPU is not supported); use bf16 on CPU")
        if self.loss == "siglip" and self.local_loss:
            raise ValueError("local_loss applies to loss 'clip' only; SigLIP is always computed per rank")
        if self.local_loss and not self.gather_with_grad and self.workers > 1:
            raise ValueError("local_loss with several workers needs gather_with_grad: true, or gradients are wrong")
        if self.eval_every and not self.eval_dataset:
            raise ValueError("eval_every > 0 needs eval_dataset (an evaluation directory)")
        if not 0 <= self.min_workers <= self.workers:
            raise ValueError(f"min_workers must be in [0, workers={self.workers}], got {self.min_workers}")
        if 0 < self.min_workers < self.workers and self.strategy == "deepspeed":
            raise ValueError(
                "min_workers < workers (elastic) needs strategy: ddp; DeepSpeed ZeRO checkpoints resume only at "
                "the same world size. Set min_workers: 0 or strategy: ddp"
            )
        if self.accum_mode not in ("contrastive", "average"):
            raise ValueError(f"accum_mode must be 'contrastive' or 'average', got {self.accum_mode!r}")
        if min(self.lock_image_unlocked_groups, self.lock_text_unlocked_layers) < 0:
            raise ValueError("lock_image_unlocked_groups and lock_text_unlocked_layers must be >= 0")
        if self.lock_image_unlocked_groups and not self.lock_image:
            raise ValueError("lock_image_unlocked_groups needs lock_image: true")
        if self.lock_text_unlocked_layers and not self.lock_text:
            raise ValueError("lock_text_unlocked_layers needs lock_text: true")
        if self.lock_image_freeze_bn_stats and not self.lock_image:
            raise ValueError("lock_image_freeze_bn_stats needs lock_image: true")
        if self.keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {self.keep_last}")
        if min(self.num_data_workers, self.max_failures + 1, self.shuffle_buffer + 1) < 0:
            raise ValueError("num_data_workers, max_failures and shuffle_buffer must be >= 0")
