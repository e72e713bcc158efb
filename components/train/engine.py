"""The two ways a worker steps the model: plain DDP (autocast, GradScaler, no_sync) or a DeepSpeed engine.

Both expose the same small surface the loop needs, so `loop.py` reads as one explicit loop:
`train_step` (the forwards and backwards of one accumulation window, see `accum.py`, then one optimiser step),
`state_to`/`state_from` a local directory, and `export_state_dict` for the safetensors model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .accum import ACCUMULATORS, Batch
from .optim import build_optimizer, build_scheduler

MAX_LOG_SCALE = math.log(100)
LossFn = Callable[..., torch.Tensor]  # (image_features, text_features, logit_scale[, logit_bias]) -> loss
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class DDPEngine:
    """torch DDP with autocast (bf16 CPU/GPU, fp16 + GradScaler on GPU), accumulation and clipping."""

    def __init__(self, model: nn.Module, cfg: Any, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.module = model.to(device)
        self.optimizer = build_optimizer(model, cfg.lr, cfg.wd, (cfg.beta1, cfg.beta2), cfg.eps)
        self.scheduler = build_scheduler(self.optimizer, cfg.warmup, cfg.steps)
        self.wrapped = self.module
        if _world() > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        # train.compile: only the training forward goes through the compiled wrapper; `module` (state dicts: no
        # `_orig_mod.` keys) and encode_image/encode_text (zero-shot eval) stay eager. A wrapper, not the in-place
        # nn.Module.compile: 2x faster on CPU for `tiny` in one measurement (BENCHMARKS.md)
        self.forward = torch.compile(self.wrapped) if cfg.compile else self.wrapped
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.last_grad_norm = float("nan")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.cfg.precision])

    def accumulate(self, batches: list[Batch], loss_fn: LossFn) -> torch.Tensor:
        """Forwards and backwards of one accumulation window (gradients in `.grad`); returns its loss."""
        last = len(batches) - 1

        def forward(images: torch.Tensor, tokens: torch.Tensor) -> tuple:
            # the no-grad caching pass needs no DDP bookkeeping (and must not arm its reducer)
            # train.compile: the training forward goes through the compiled wrapper (`self.forward`)
            model = self.forward if torch.is_grad_enabled() else self.module
            with self.autocast():
                return model(images, tokens)

        def backward(j: int, loss: torch.Tensor) -> None:
            if loss.requires_grad:  # both towers locked: only the last re-run (the logit scale's) has a graph
                (self.scaler.scale(loss) if self.scaler else loss).backward()

        def sync(j: int) -> contextlib.AbstractContextManager:
            # skip the gradient all-reduce on all but the last micro-batch (forward and backward inside no_sync)
            return self.wrapped.no_sync() if j < last and self.wrapped is not self.module else contextlib.nullcontext()

        return ACCUMULATORS[self.cfg.accum_mode](forward, backward, batches, loss_fn, sync)

    def train_step(self, batches: list[Batch], loss_fn: LossFn, before_step: Callable[[], None] | None = None) -> float:
        """One optimiser step over `batches` (the accumulation window); returns the window's loss.

        `before_step` (tests) runs once the window's gradients are complete, before clipping and the step.
        """
        loss = self.accumulate(batches, loss_fn)
        if before_step is not None:
            before_step()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.grad_clip > 0:
            self.last_grad_norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.grad_clip))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        clamp_logit_scale(self.module)
        return float(loss)

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def export_state_dict(self) -> dict[str, torch.Tensor] | None:
        return {k: v.detach().float().cpu() for k, v in self.module.state_dict().items()}

    def state_to(self, local_dir: Path, rank: int) -> None:
        if rank == 0:
            state = {
                "model": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
            }
            torch.save(state, local_dir / "train_state.pt")

    def state_from(self, local_dir: Path) -> None:
        state = torch.load(local_dir / "train_state.pt", map_location=self.device, weights_only=True)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])


class DeepSpeedEngine:
    """A DeepSpeed engine (ZeRO 0-3, bf16/fp16 from the JSON config passed in by the launcher).

    Checkpoints use `engine.save_checkpoint` into each rank's local temp dir (every rank writes its
    own ZeRO optimiser partition), uploaded by every rank into one staging directory; resuming
    therefore needs the same world size. The exported model is the full fp32 state dict: module
    parameters under ZeRO 0-2, gathered with `GatheredParameters` under ZeRO-3.
    """

    def __init__(self, model: nn.Module, cfg: Any, device: torch.device, ds_config: dict):
        import deepspeed

        self.cfg = cfg
        self.device = device
        self.promoted = promote_scalar_params(model)  # before the optimiser sees the parameters
        optimizer = build_optimizer(model.to(device), cfg.lr, cfg.wd, (cfg.beta1, cfg.beta2), cfg.eps)
        scheduler = build_scheduler(optimizer, cfg.warmup, cfg.steps)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config, dist_init_required=False
        )
        if cfg.compile:
            self.engine.compile()  # DeepSpeed's own: module.compile() in place, so checkpoints keep plain keys
        self.module = self.engine.module
        self.stage = int(ds_config.get("zero_optimization", {}).get("stage", 0))
        self.last_grad_norm = float("nan")

    def input_dtype(self) -> torch.dtype:
        if self.engine.bfloat16_enabled():
            return torch.bfloat16
        return torch.float16 if self.engine.fp16_enabled() else torch.float32

    def train_step(self, batches: list[Batch], loss_fn: LossFn, before_step: Callable[[], None] | None = None) -> float:
        """One optimiser step over `batches`; returns the window's loss.

        DeepSpeed owns the accumulation boundary (`gradient_accumulation_steps` = len(batches), set by
        infra): `engine.step()` follows every backward and steps the optimiser after the last one. The
        losses are already what the window's gradient needs (`accum.py`), so DeepSpeed must not divide
        them by the accumulation steps again (`scale_wrt_gas=False`). `before_step` (tests) runs after the
        last backward, before the optimiser step, while DeepSpeed's gradients are complete.
        """
        gas = self.engine.gradient_accumulation_steps()
        if len(batches) != gas:
            raise ValueError(f"{len(batches)} micro-batches but DeepSpeed's gradient_accumulation_steps is {gas}")
        last = len(batches) - 1

        def forward(images: torch.Tensor, tokens: torch.Tensor) -> tuple:
            return self.engine(images.to(self.input_dtype()), tokens)

        def backward(j: int, loss: torch.Tensor) -> None:
            if loss.requires_grad:  # both towers locked: only the last re-run (the logit scale's) has a graph
                self.engine.backward(loss, scale_wrt_gas=False)
            if j == last and before_step is not None:
                before_step()
            self.engine.step()  # optimiser + scheduler step only at the boundary; clipping from the config

        loss = ACCUMULATORS[self.cfg.accum_mode](forward, backward, batches, loss_fn)
        norm = self.engine.get_global_grad_norm()
        self.last_grad_norm = float(norm) if norm is not None else float("nan")
        # the forward pass clamps exp(logit_scale) at 100 too; this keeps the stored value in range
        # where the module parameter is the master copy (ZeRO 0 fp32)
        if self.stage < 3:
            clamp_logit_scale(self.module)
        return float(loss)

    def lr(self) -> float:
        return self.engine.get_lr()[0]

    def export_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Full fp32 state dict on every rank (ZeRO-3 gathers the partitions; a collective)."""
        if self.stage == 3:
            import deepspeed

            params = list(self.module.parameters())
            with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                sd = {k: v.detach().float().cpu().clone() for k, v in self.module.state_dict().items()}
        else:
            sd = {k: v.detach().float().cpu() for k, v in self.module.state_dict().items()}
        return {k: v.reshape(()) if k in self.promoted else v for k, v in sd.items()}

    def state_to(self, local_dir: Path, rank: int) -> None:
        self.engine.save_checkpoint(str(local_dir), tag="ds")  # collective: every rank writes its partition

    def state_from(self, local_dir: Path) -> None:
        with weights_only_torch_load():  # DeepSpeed's loader passes weights_only=False: a checkpoint could run code
            path, _ = self.engine.load_checkpoint(str(local_dir), tag="ds")
        if path is None:
            raise RuntimeError(f"{local_dir}: DeepSpeed found no checkpoint under tag 'ds'")


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """Within the block every `torch.load` runs with weights_only=True (tensors, containers, primitives only).

    DeepSpeed's TorchCheckpointEngine calls `torch.load(..., weights_only=False)`; whoever can write
    to the checkpoint storage could then run code in every training worker on resume. Its ZeRO
    checkpoints hold only tensors, dicts and the few allow-listed classes below, so they load this way.
    """
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    original = torch.load

    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = load
    try:  # the plain data classes DeepSpeed pickles (listed from its checkpoints), nothing that runs code
        with torch.serialization.safe_globals([LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]):
            yield
    finally:
        torch.load = original


def promote_scalar_params(model: nn.Module) -> set[str]:
    """Replace 0-dim parameters (CLIP's logit_scale/logit_bias) by 1-element vectors, in place.

    DeepSpeed 0.19 assumes every parameter has a dimension: its model broadcast and ZeRO-3 init view
    parameters as bytes ("self.dim() cannot be 0 to view Float as Byte") and its stage-0 clipping
    multiplies a 0-dim grad by a (1,) coefficient. Shape (1,) broadcasts identically in the loss;
    `DeepSpeedEngine.export_state_dict` turns them back into scalars for clip_core.
    """
    promoted = set()
    for name, p in list(model.named_parameters()):
        if p.ndim == 0:
            owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(owner, name.rpartition(".")[2], nn.Parameter(p.detach().reshape(1), requires_grad=p.requires_grad))
            promoted.add(name)
    return promoted


def clamp_logit_scale(module: nn.Module) -> None:
    """Keep logit_scale in [0, ln 100] (the paper clips the temperature at 100)."""
    with torch.no_grad():
        module.logit_scale.clamp_(0, MAX_LOG_SCALE)


def build_engine(model: nn.Module, cfg: Any, device: torch.device, ds_config: dict | None) -> DDPEngine | DeepSpeedEngine:
    """DDP or DeepSpeed per `cfg.strategy`; DeepSpeed needs the config dict built by infra."""
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.set_patch_dropout(cfg.patch_dropout)
    if cfg.strategy == "deepspeed":
        if ds_config is None:
            raise ValueError("strategy deepspeed needs a DeepSpeed config (pass ds_config from infra.deepspeed_config)")
        return DeepSpeedEngine(model, cfg, device, ds_config)
    return DDPEngine(model, cfg, device)
