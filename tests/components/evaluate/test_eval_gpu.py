"""GPU tier (CUDA, or CPU in the GPU kit's dry run): evaluation encode and the linear probe's torch backend on the device."""

from pathlib import Path

import numpy as np
import pytest
import torch

from components.evaluate.cache import encode_images, encode_texts
from components.evaluate.linear_probe import fit_sklearn, fit_torch

pytestmark = pytest.mark.gpu


def test_encode_on_device_bf16_matches_cpu_fp32(tiny_model, eval_root: Path, gpu_device) -> None:
    model, tokenizer = tiny_model
    images = sorted(str(p) for p in (eval_root / "colors" / "images").glob("*.png"))
    ref = encode_images(model.cpu(), images, batch_size=16, precision="fp32")
    texts = ["a photo of a red.", "a blue square.", "something green."]
    ref_t = encode_texts(model, tokenizer, texts)
    try:
        model.to(gpu_device)
        got = encode_images(model, images, batch_size=16, num_workers=2, precision="bf16")
        got_t = encode_texts(model, tokenizer, texts, precision="bf16")
    finally:
        model.cpu()
    assert got.shape == ref.shape and got.device.type == "cpu" and got.dtype == torch.float32
    # bf16 keeps 8 mantissa bits: unit vectors agree to a cosine of about 1 - 1e-4
    assert (got * ref).sum(1).min() > 0.995 and (got_t * ref_t).sum(1).min() > 0.995
    assert (got.norm(dim=1) - 1).abs().max() < 1e-5


@pytest.mark.parametrize("k", [2, 5])
def test_linear_probe_torch_backend_on_device_matches_sklearn(k: int, gpu_device) -> None:
    rng = np.random.default_rng(k)
    y = np.repeat(np.arange(k), 40)
    X = rng.normal(size=(len(y), 16)) + 2.0 * np.eye(16)[y]
    Xt = rng.normal(size=(200, 16)) + 2.0 * np.eye(16)[np.arange(200) % k]
    a = fit_sklearn(X, y, 1.0)
    b = fit_torch(X, y, 1.0, device=gpu_device.type)
    pa, pb = a.logits(Xt, k).softmax(1), b.logits(Xt, k).softmax(1)
    assert (pa.argmax(1) == pb.argmax(1)).float().mean() > 0.99
    assert (pa - pb).abs().max() < 1e-3
