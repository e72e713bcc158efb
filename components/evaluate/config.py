"""`evaluate` section of params.yaml: the typed config of the evaluation stage (light: no torch import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TASKS = ("zeroshot_classification", "zeroshot_retrieval", "linear_probe", "fewshot", "robustness")


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of `evaluate_model`.

    Attributes:
        batch_size: images per encode batch.
        num_workers: DataLoader workers for image decoding (0 = in the main process).
        precision: "fp32" or "bf16" (autocast around the image and text towers).
        device: "auto" (CUDA when available), "cpu" or "cuda".
        datasets: eval datasets to run, in order; empty = every manifest directory under the eval root. Each entry
            is `{name: spec}` (spec: a path or fsspec URL, format detected, or `manifest:`/`wds:`/`imagefolder:PATH`,
            `torchvision:NAME:ROOT`; see components/evaluate/readers) or a plain name of a directory under the eval root.
        tasks: which of TASKS to run (each only where the dataset supports it).
        cache_dir: embedding cache directory; empty = `<out_dir>/cache`.
        recall_ks: k values of retrieval recall@k.
        probe_backend: "sklearn" (CPU) or "torch" (L-BFGS on the same objective; GPU when device allows).
        probe_train_fraction: share of each class carved (deterministically) as the probe's train split
            when the manifest has no `split` column; the rest is the test split.
        probe_val_fraction: share of the train split held out to choose C.
        probe_c_min, probe_c_max, probe_c_steps: log-spaced grid of the inverse L2 strength C (paper: 1e-6..1e6, 97).
        probe_c_init_steps: coarse points evaluated first; the search then halves its step around the peak.
        probe_max_iter: L-BFGS iterations per fit.
        fewshot_ks: examples per class of the few-shot curve.
        seed: seed of splits and few-shot sampling.
        progress: show progress bars.
        wise_ft_alpha: with train.init_from set, > 0 also scores the initial model and the WiSE-FT
            interpolation (1 - a) * initial + a * fine-tuned, zero-shot tasks only (components/evaluate/transfer.py).
    """

    batch_size: int = 64
    num_workers: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    datasets: tuple[str | dict[str, str], ...] = ()
    tasks: tuple[str, ...] = TASKS
    cache_dir: str = ""
    recall_ks: tuple[int, ...] = (1, 5, 10)
    probe_backend: Literal["sklearn", "torch"] = "sklearn"
    probe_train_fraction: float = 0.5
    probe_val_fraction: float = 0.2
    probe_c_min: float = 1e-6
    probe_c_max: float = 1e6
    probe_c_steps: int = 97
    probe_c_init_steps: int = 7
    probe_max_iter: int = 1000
    fewshot_ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    seed: int = 0
    progress: bool = True
    wise_ft_alpha: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.wise_ft_alpha <= 1.0:
            raise ValueError(f"wise_ft_alpha must be in [0, 1] (0 = off), got {self.wise_ft_alpha}")
        for i, entry in enumerate(self.datasets):
            if isinstance(entry, dict) and (
                len(entry) != 1 or not all(isinstance(x, str) and x for kv in entry.items() for x in kv)
            ):
                raise ValueError(f"datasets[{i}]: expected one `name: spec` pair of strings, got {entry!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"tasks: unknown {unknown}; choose from {list(TASKS)}")
        if not 0.0 < self.probe_train_fraction < 1.0:
            raise ValueError(f"probe_train_fraction must be in (0, 1), got {self.probe_train_fraction}")
        if not 0.0 < self.probe_val_fraction < 1.0:
            raise ValueError(f"probe_val_fraction must be in (0, 1), got {self.probe_val_fraction}")
        if not 0.0 < self.probe_c_min < self.probe_c_max:
            raise ValueError(f"need 0 < probe_c_min < probe_c_max, got {self.probe_c_min}, {self.probe_c_max}")
        if self.probe_c_init_steps < 2 or self.probe_c_steps < self.probe_c_init_steps:
            raise ValueError("need 2 <= probe_c_init_steps <= probe_c_steps")
        if (self.probe_c_steps - 1) % (self.probe_c_init_steps - 1):
            raise ValueError(
                f"probe_c_steps - 1 ({self.probe_c_steps - 1}) must be a multiple of probe_c_init_steps - 1 "
                f"({self.probe_c_init_steps - 1}) so the coarse points lie on the grid (e.g. 97 and 7)"
            )
        if any(k < 1 for k in self.fewshot_ks) or any(k < 1 for k in self.recall_ks):
            raise ValueError("fewshot_ks and recall_ks must be positive")
