"""Shared fixtures and tier handling: `gpu` tests skip without CUDA, unless the GPU kit's CPU dry run asks for them."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # a loaded 2-core CI box starts it slowly

# benchmarks/gpu_check.sh --cpu-dry-run sets this: the `gpu` tier then runs on CPU (gloo, tiny sizes), so
# the first run on a GPU machine is not the tests' first run.
DRY_RUN = os.environ.get("CLIP_GPU_DRY_RUN") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available() or DRY_RUN:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture()
def gpu_device():
    """The device of a `gpu` test: CUDA, or CPU in the kit's dry run."""
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A 2-CPU local Ray (token auth, as `ensure_ray` starts it) for the tests of one module; shut down after them.

    Module scope, not session: other modules start Rays of other sizes (the training tests need 4 CPUs)."""
    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state

    from infra.ray_launcher import ensure_ray

    if ray.is_initialized():  # started by someone else: use it, leave it running
        yield
        return
    token = tmp_path_factory.mktemp("ray-token") / "auth_token"  # not the user's ~/.ray/auth_token
    reset_auth_token_state()  # a token cached by an earlier Ray of this process would be refused by this one
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIP_RAY_TMPDIR", str(tmp_path_factory.mktemp("ray")))
        mp.setenv("RAY_AUTH_TOKEN_PATH", str(token))
        mp.delenv("RAY_AUTH_MODE", raising=False)
        mp.delenv("RAY_AUTH_TOKEN", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        ensure_ray(num_cpus=2)
        try:
            yield
        finally:
            ray.shutdown()
            mp.delenv("RAY_AUTH_MODE", raising=False)  # Ray set it for this process
    reset_auth_token_state()
