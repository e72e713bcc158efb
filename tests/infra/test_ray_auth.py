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
