"""Throughput models: data-parallel CLIP training (samples/s ~= per-worker samples/s x workers x efficiency), and
ingest on Ray Data (`IngestInputs`: the cluster decodes, one driver writes).

One optimiser step at W workers, each with a local batch B (global batch N = W*B), costs

    t_step = t_compute + t_logits_extra + t_gather + t_allreduce

    t_compute      = B / per_worker_samples_per_s * slowdown       measured at W=1 (includes its B x B logits);
                                                                   slowdown > 1 when W workers share fewer cores
    t_logits_extra = (logits_flops(W) - logits_flops(1)) / flops_per_s
                     logits_flops = 3 (fwd + bwd) x 2 x rows x N x D x matrices
                     rows = B, matrices = 2 with local_loss; rows = N, matrices = 1 without (each rank
                     builds the full N x N matrix, the text logits are its transpose)
    t_gather       = ring all-gather of image and text features: (W-1)/W x 2 x N x D x feature_bytes / bw
                     + 2 x (W-1) x latency
    t_allreduce    = ring all-reduce of the gradients: 2 x (W-1)/W x param_bytes / bw
                     + 2 x (W-1) x latency x buckets, times (1 - overlap) (DDP overlaps it with backward)

Pure python, no torch: usable for planning on any machine. The parameters that describe a machine
(bandwidth, latency, flops/s, cores) are measured by `benchmarks/scaling.py` on this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DDP_BUCKET_BYTES = 25 * 2**20  # torch DDP's default bucket_cap_mb=25: one all-reduce per bucket


@dataclass(frozen=True)
class ScalingInputs:
    """What the model needs: the workload, the measured single-worker speed and the interconnect."""

    per_worker_samples_per_s: float  # measured with 1 worker at this local batch (compute + data, no comms)
    local_batch: int  # B, per worker per optimiser step
    embed_dim: int  # D, the CLIP embedding width
    param_count: int  # trainable parameters (gradients all-reduced every step)
    bandwidth_bytes_per_s: float  # per-link bus bandwidth of the collective backend
    flops_per_s: float  # one worker's matmul throughput, for the extra logits work
    latency_s: float = 0.0  # per ring step of a collective (dominates small messages on gloo/TCP)
    feature_bytes: int = 4  # bytes per feature element: 4 fp32, 2 bf16/fp16 (features are gathered in this dtype)
    grad_bytes: int = 4  # bytes per gradient element (fp32 master grads; 2 for bf16 grad all-reduce)
    local_loss: bool = False  # train.local_loss: B x N logits per rank instead of N x N
    overlap: float = 0.0  # fraction of the gradient all-reduce hidden behind backward (0 = none, conservative)
    cores: float | None = None  # CPU cores all workers share; None = each worker has its own device
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        positive = ("per_worker_samples_per_s", "local_batch", "embed_dim", "param_count", "bandwidth_bytes_per_s", "flops_per_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"ScalingInputs.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.overlap <= 1.0:
            raise ValueError(f"ScalingInputs.overlap must be in [0, 1], got {self.overlap}")
        if self.latency_s < 0 or (self.cores is not None and self.cores <= 0):
            raise ValueError("ScalingInputs.latency_s must be >= 0 and cores > 0 (or None)")


@dataclass(frozen=True)
class StepCost:
    """Seconds per optimiser step by part, and the resulting throughput at `workers`."""

    workers: int
    compute_s: float
    logits_extra_s: float
    gather_s: float
    allreduce_s: float

    @property
    def step_s(self) -> float:
        return self.compute_s + self.logits_extra_s + self.gather_s + self.allreduce_s

    def samples_per_s(self, local_batch: int) -> float:
        return self.workers * local_batch / self.step_s


def logits_flops(local_batch: int, workers: int, embed_dim: int, local_loss: bool) -> float:
    """Forward + backward flops of the contrastive logits on one rank (backward = 2 x forward)."""
    n = local_batch * workers
    rows, matrices = (local_batch, 2) if local_loss else (n, 1)
    return 3.0 * 2.0 * rows * n * embed_dim * matrices


def feature_gather_bytes(local_batch: int, workers: int, embed_dim: int, feature_bytes: int) -> float:
    """Bytes of the gathered image + text features per step: 2 x global batch x D x dtype bytes."""
    return 2.0 * local_batch * workers * embed_dim * feature_bytes


def step_cost(inp: ScalingInputs, workers: int) -> StepCost:
    """The per-step cost breakdown at `workers` data-parallel workers."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    w, b = workers, inp.local_batch
    slowdown = 1.0
    if inp.cores is not None:  # W workers x threads on fewer cores: each one's compute stretches
        slowdown = max(1.0, w * inp.threads_per_worker / inp.cores)
    compute = b / inp.per_worker_samples_per_s * slowdown
    extra_flops = logits_flops(b, w, inp.embed_dim, inp.local_loss) - logits_flops(b, 1, inp.embed_dim, inp.local_loss)
    logits_extra = extra_flops / inp.flops_per_s * slowdown
    if w == 1:
        return StepCost(1, compute, logits_extra, 0.0, 0.0)
    ring = (w - 1) / w
    gather_bytes = feature_gather_bytes(b, w, inp.embed_dim, inp.feature_bytes)
    gather = ring * gather_bytes / inp.bandwidth_bytes_per_s + 2 * (w - 1) * inp.latency_s
    param_bytes = inp.param_count * inp.grad_bytes
    buckets = math.ceil(param_bytes / DDP_BUCKET_BYTES)
    allreduce = 2 * ring * param_bytes / inp.bandwidth_bytes_per_s + 2 * (w - 1) * inp.latency_s * buckets
    return StepCost(w, compute, logits_extra, gather, allreduce * (1.0 - inp.overlap))


def predict_samples_per_s(inp: ScalingInputs, workers: int) -> float:
    """Global samples/s at `workers` workers."""
    return step_cost(inp, workers).samples_per_s(inp.local_batch)


def efficiency(inp: ScalingInputs, workers: int) -> float:
    """Predicted samples/s over perfect linear scaling (workers x the 1-worker speed)."""
    return predict_samples_per_s(inp, workers) / (workers * predict_samples_per_s(inp, 1))


def zero_model_state_bytes(param_count: int, workers: int, stage: int, precision: str = "bf16") -> float:
    """Bytes of parameters + gradients + Adam state per GPU under DeepSpeed ZeRO (activations not included).

    Per parameter (ZeRO paper, Rajbhandari et al. 2020): bf16/fp16 training keeps 2 B of weights, 2 B of
    gradients and 12 B of optimiser state (fp32 master weights, Adam m and v); fp32 training 4 + 4 + 8.
    Stage 1 shards the optimiser state over the workers, stage 2 also the gradients, stage 3 also the weights.
    """
    if stage not in (0, 1, 2, 3) or workers < 1:
        raise ValueError(f"stage must be 0-3 and workers >= 1, got stage={stage}, workers={workers}")
    weights, grads, optim = (4.0, 4.0, 8.0) if precision == "fp32" else (2.0, 2.0, 12.0)
    if stage >= 1:
        optim /= workers
    if stage >= 2:
        grads /= workers
    if stage >= 3:
        weights /= workers
    return param_count * (weights + grads + optim)


# ----------------------------------------------------------------------------- ingest (data.engine: ray)
@dataclass(frozen=True)
class IngestInputs:
    """Ingest on Ray Data: decoding, checks and hashing on the cluster's cores; re-sharding and the tables in one driver.

    samples/s(nodes) = min(nodes x cores_per_node x per_core_samples_per_s,    the decode/check tasks
                           driver_samples_per_s,                               the driver's own work per sample
                           driver_bandwidth / bytes_per_sample,                every normalised sample reaches the driver
                           write_bandwidth / bytes_per_sample,                 ... and is written by it to OUT
                           [shared_cores / (1/per_core + 1/driver)])           one machine: workers and driver share cores
    Reading the sources is left out: each task reads its own shards, so it scales with the nodes (object stores
    serve many readers at once).
    """

    per_core_samples_per_s: float  # one Ray task on one core (benchmarks/data_engine.py: "ray, 1 worker CPU")
    cores_per_node: int
    driver_samples_per_s: float  # the driver loop fed pre-computed results (benchmarks/data_engine.py: "driver only")
    bytes_per_sample: float  # normalised tar members (image + caption + json), about the input image size
    driver_bandwidth_bytes_per_s: float  # the driver's network, receiving results
    write_bandwidth_bytes_per_s: float  # the driver's writes to OUT (shards dominate)
    shared_cores: float | None = None  # set when the driver and all workers run on one machine with this many cores

    def __post_init__(self) -> None:
        for name in ("per_core_samples_per_s", "cores_per_node", "driver_samples_per_s", "bytes_per_sample",
                     "driver_bandwidth_bytes_per_s", "write_bandwidth_bytes_per_s"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"IngestInputs.{name} must be > 0, got {getattr(self, name)}")
        if self.shared_cores is not None and self.shared_cores <= 0:
            raise ValueError("IngestInputs.shared_cores must be > 0 (or None)")


def ingest_limits(inp: IngestInputs, nodes: int) -> dict[str, float]:
    """samples/s each part of a ray-engine ingest allows at `nodes` nodes; the run goes at the smallest."""
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    limits = {
        "workers": nodes * inp.cores_per_node * inp.per_core_samples_per_s,
        "driver_cpu": inp.driver_samples_per_s,
        "driver_network": inp.driver_bandwidth_bytes_per_s / inp.bytes_per_sample,
        "driver_writes": inp.write_bandwidth_bytes_per_s / inp.bytes_per_sample,
    }
    if inp.shared_cores is not None:
        limits["shared_cores"] = inp.shared_cores / (1 / inp.per_core_samples_per_s + 1 / inp.driver_samples_per_s)
    return limits


def predict_ingest_samples_per_s(inp: IngestInputs, nodes: int) -> float:
    """Ingest samples/s at `nodes` nodes: its tightest limit."""
    return min(ingest_limits(inp, nodes).values())


def ingest_bottleneck(inp: IngestInputs, nodes: int) -> str:
    """Which limit binds at `nodes` ("workers" while adding nodes still helps)."""
    limits = ingest_limits(inp, nodes)
    return min(limits, key=limits.__getitem__)


def ingest_nodes_to_saturate(inp: IngestInputs) -> int:
    """The node count beyond which more nodes no longer speed up ingest (the driver's limits bind)."""
    driver = min(v for k, v in ingest_limits(inp, 1).items() if k != "workers")
    return max(1, math.ceil(driver / (inp.cores_per_node * inp.per_core_samples_per_s)))
