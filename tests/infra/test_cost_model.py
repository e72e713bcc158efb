"""Known answers for the data-parallel throughput model (hand-computed step costs)."""

from __future__ import annotations

import pytest

from infra.cost_model import ScalingInputs, efficiency, feature_gather_bytes, logits_flops, predict_samples_per_s, step_cost

# B=4, D=8, 100 fp32 params, 1000 B/s links, 1536 flop/s, 4 samples/s per worker: every term is easy by hand.
BASE = ScalingInputs(
    per_worker_samples_per_s=4.0,
    local_batch=4,
    embed_dim=8,
    param_count=100,
    bandwidth_bytes_per_s=1000.0,
    flops_per_s=1536.0,
    local_loss=True,
)


def test_two_workers_by_hand() -> None:
    c = step_cost(BASE, 2)
    assert c.compute_s == pytest.approx(1.0)  # 4 samples at 4 samples/s
    assert c.logits_extra_s == pytest.approx(1.0)  # 3*2*4*8*8*2 - 3*2*4*4*8*2 = 1536 flops at 1536 flop/s
    assert c.gather_s == pytest.approx(0.256)  # (2-1)/2 * (2 * 8 * 8 * 4 = 512 B) / 1000 B/s
    assert c.allreduce_s == pytest.approx(0.4)  # 2 * (2-1)/2 * 400 B / 1000 B/s
    assert predict_samples_per_s(BASE, 2) == pytest.approx(8 / 2.656)
    assert efficiency(BASE, 2) == pytest.approx((8 / 2.656) / 8)


def test_latency_adds_two_ring_steps_per_collective() -> None:
    c = step_cost(ScalingInputs(**{**BASE.__dict__, "latency_s": 0.01}), 2)
    assert c.gather_s == pytest.approx(0.256 + 0.02)  # 2 collectives (image, text) x 1 ring step
    assert c.allreduce_s == pytest.approx(0.4 + 0.02)  # reduce-scatter + all-gather x 1 ring step x 1 bucket


def test_global_logits_and_shared_cores() -> None:
    assert logits_flops(4, 2, 8, local_loss=False) == 3 * 2 * 8 * 8 * 8  # the full N x N matrix on each rank
    assert feature_gather_bytes(4, 2, 8, 2) == 256  # bf16 features: half the bytes
    shared = ScalingInputs(**{**BASE.__dict__, "local_loss": False, "cores": 1.0})
    c = step_cost(shared, 2)
    assert c.compute_s == pytest.approx(2.0)  # 2 one-thread workers on 1 core: each runs at half speed
    assert c.logits_extra_s == pytest.approx((3072 - 768) / 1536 * 2)


def test_one_worker_is_the_measurement_and_efficiency_falls() -> None:
    assert predict_samples_per_s(BASE, 1) == pytest.approx(4.0)
    assert efficiency(BASE, 1) == pytest.approx(1.0)
    effs = [efficiency(BASE, w) for w in (1, 2, 4, 8, 64)]
    assert effs == sorted(effs, reverse=True) and effs[-1] < 0.2  # the N^2-ish logits term wins at scale


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="bandwidth_bytes_per_s"):
        ScalingInputs(**{**BASE.__dict__, "bandwidth_bytes_per_s": 0.0})
    with pytest.raises(ValueError, match="workers"):
        step_cost(BASE, 0)


def test_zero_memory_by_stage() -> None:
    from infra.cost_model import zero_model_state_bytes

    p = 1_000_000
    assert zero_model_state_bytes(p, 8, 0) == 16 * p  # 2 + 2 + 12 bytes per parameter, nothing sharded
    assert zero_model_state_bytes(p, 8, 1) == (2 + 2 + 12 / 8) * p
    assert zero_model_state_bytes(p, 8, 2) == (2 + (2 + 12) / 8) * p
    assert zero_model_state_bytes(p, 8, 3) == 16 / 8 * p
    assert zero_model_state_bytes(p, 4, 3, "fp32") == 16 / 4 * p


def test_ingest_model_by_hand() -> None:
    from infra.cost_model import (
        IngestInputs,
        ingest_bottleneck,
        ingest_limits,
        ingest_nodes_to_saturate,
        predict_ingest_samples_per_s,
    )

    # 100 samples/s per core, 8 cores per node; the driver: 5,000 samples/s of CPU, 4 MB/s in, 3 MB/s out; 1 KB/sample
    inp = IngestInputs(per_core_samples_per_s=100, cores_per_node=8, driver_samples_per_s=5000, bytes_per_sample=1000,
                       driver_bandwidth_bytes_per_s=4e6, write_bandwidth_bytes_per_s=3e6)  # fmt: skip
    assert ingest_limits(inp, 2) == {"workers": 1600, "driver_cpu": 5000, "driver_network": 4000, "driver_writes": 3000}
    assert predict_ingest_samples_per_s(inp, 2) == 1600 and ingest_bottleneck(inp, 2) == "workers"
    assert predict_ingest_samples_per_s(inp, 4) == 3000 and ingest_bottleneck(inp, 4) == "driver_writes"
    assert ingest_nodes_to_saturate(inp) == 4  # 3000 / 800 per node, rounded up
    # one machine, 2 cores shared by the driver and the workers: 2 / (1/100 + 1/5000) = 196.08 samples/s
    one = IngestInputs(100, 2, 5000, 1000, 4e6, 3e6, shared_cores=2)
    assert predict_ingest_samples_per_s(one, 1) == pytest.approx(2 / (0.01 + 0.0002))
    assert ingest_bottleneck(one, 1) == "shared_cores"
    with pytest.raises(ValueError, match="cores_per_node"):
        IngestInputs(100, 0, 5000, 1000, 4e6, 3e6)
