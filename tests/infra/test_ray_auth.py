"""infra/ray_auth: the token file of the Rays we start is created owner-only and kept; opting out is explicit."""

import re
import stat

from infra import ray_auth


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_token_file_created_0600_and_kept(tmp_path, monkeypatch) -> None:
    path = tmp_path / "ray" / "auth_token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert ray_auth.prepare_local_ray() is True
    token = path.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", token) and _mode(path) == 0o600
    assert ray_auth.ensure_token() == path and path.read_text() == token  # the cluster's token is never replaced
    assert [p.name for p in path.parent.iterdir()] == ["auth_token"]  # no temp file left
    path.chmod(0o644)  # e.g. written by `ray get-auth-token --generate` under umask 022
    ray_auth.ensure_token()
    assert _mode(path) == 0o600 and path.read_text() == token


def test_opt_out_and_token_from_the_environment(tmp_path, monkeypatch, caplog) -> None:
    path = tmp_path / "auth_token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    assert ray_auth.prepare_local_ray() is False and not path.exists()
    assert "every local user" in caplog.text
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "a" * 64)
    assert ray_auth.prepare_local_ray() is True and not path.exists()  # the token is in the environment: no file


def test_ray_head_script_starts_ray_in_token_mode(tmp_path) -> None:
    """infra/scripts/ray_head.sh, with a stand-in `ray` that records what it was started with."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "ray").write_text('#!/bin/sh\necho "mode=$RAY_AUTH_MODE args=$*" > "$HOME/ray-started"\n')
    (bin_dir / "ray").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(tmp_path), VENV_BIN=str(bin_dir), RAY_NUM_CPUS="1")
    p = subprocess.run(["bash", str(root / "infra/scripts/ray_head.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    token = tmp_path / ".ray" / "auth_token"
    assert (tmp_path / "ray-started").read_text().startswith("mode=token args=start --head")
    assert _mode(token) == 0o600 and str(token) in p.stdout
    token.unlink()
    p = subprocess.run(["bash", str(root / "infra/scripts/ray_head.sh")], env={**env, "RAY_AUTH_MODE": "disabled"},
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0 and "WARNING: RAY_AUTH_MODE=disabled" in p.stderr
    assert (tmp_path / "ray-started").read_text().startswith("mode=disabled") and not token.exists()
