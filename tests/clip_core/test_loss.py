import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from clip_core.loss import ClipLoss, SigLipLoss


def test_clip_loss_2x2_by_hand() -> None:
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    # logits_per_image = 2 * img @ txt.T = [[1.2, 0], [1.6, 2]]
    e = math.exp
    per_image = -math.log(e(1.2) / (e(1.2) + e(0))) - math.log(e(2) / (e(1.6) + e(2)))
    per_text = -math.log(e(1.2) / (e(1.2) + e(1.6))) - math.log(e(2) / (e(0) + e(2)))
    expected = (per_image / 2 + per_text / 2) / 2
    got = ClipLoss()(img, txt, torch.tensor(2.0))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_siglip_loss_2x2_by_hand() -> None:
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    scale, bias = torch.tensor(2.0), torch.tensor(-1.0)
    # logits = 2 * img @ txt.T - 1 = [[0.2, -1], [0.6, 1]]; +1 on the diagonal, -1 off it
    ls = lambda z: math.log(1 / (1 + math.exp(-z)))  # noqa: E731
    expected = -(ls(0.2) + ls(1.0) + ls(-0.6) + ls(1.0)) / 2
    assert SigLipLoss()(img, txt, scale, bias).item() == pytest.approx(expected, rel=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, img: torch.Tensor, txt: torch.Tensor, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    B = img.shape[0] // world
    results = {}
    for name, loss_fn in [
        ("clip_local", ClipLoss(local_loss=True, gather_with_grad=True)),
        ("clip_global", ClipLoss(local_loss=False, gather_with_grad=True)),
        ("siglip", SigLipLoss()),
        ("clip_nograd", ClipLoss(local_loss=False, gather_with_grad=False)),  # the default; loss only
    ]:
        i = img[rank * B : (rank + 1) * B].clone().requires_grad_(True)
        t = txt[rank * B : (rank + 1) * B].clone().requires_grad_(True)
        scale = torch.tensor(3.0, requires_grad=True)
        args = (i, t, scale) if name != "siglip" else (i, t, scale, torch.tensor(-2.0))
        loss = loss_fn(*args)
        loss.backward()
        # DDP averages gradients over ranks; sum the per-rank grads of the local slices
        results[name] = (loss.item(), i.grad.clone(), t.grad.clone(), scale.grad.clone())
    out[rank] = results
    dist.destroy_process_group()


def test_distributed_loss_matches_single_process() -> None:
    torch.manual_seed(0)
    world, B, D = 2, 3, 8
    img = F.normalize(torch.randn(world * B, D), dim=-1)
    txt = F.normalize(torch.randn(world * B, D), dim=-1)
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(world, _free_port(), img, txt, out), nprocs=world, join=True)
    ref_loss = ClipLoss()(img, txt, torch.tensor(3.0)).item()
    assert all(out[r]["clip_nograd"][0] == pytest.approx(ref_loss, rel=1e-5) for r in range(world))

    for name, loss_fn in [("clip_local", ClipLoss()), ("clip_global", ClipLoss()), ("siglip", SigLipLoss())]:
        i, t = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
        scale = torch.tensor(3.0, requires_grad=True)
        args = (i, t, scale) if name != "siglip" else (i, t, scale, torch.tensor(-2.0))
        ref = loss_fn(*args)
        ref.backward()
        losses = [out[r][name][0] for r in range(world)]
        # the global loss is the mean of the per-rank losses (equal on every rank for the global variant)
        assert sum(losses) / world == pytest.approx(ref.item(), rel=1e-5)
        if name == "clip_global":
            assert all(v == pytest.approx(ref.item(), rel=1e-5) for v in losses)
        # DDP averages parameter grads over ranks, so grads of each rank's slice, / world, must match
        g_scale = sum(out[r][name][3] for r in range(world)) / world
        g_img = torch.cat([out[r][name][1] for r in range(world)]) / world
        g_txt = torch.cat([out[r][name][2] for r in range(world)]) / world
        assert torch.allclose(g_scale, scale.grad, atol=1e-5)
        assert torch.allclose(g_img, i.grad, atol=1e-5), name
        assert torch.allclose(g_txt, t.grad, atol=1e-5), name
