"""flows/prefect_auth: the project's commands take the local server's credential from its file, for loopback only."""

import pytest

from flows.prefect_auth import use_local_credential


@pytest.fixture()
def home(tmp_path, monkeypatch):
    (tmp_path / "api_auth").write_text("clip:s3cret\n")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    for k in ("PREFECT_API_AUTH_STRING", "PREFECT_AUTH"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path


@pytest.mark.parametrize("url", ["http://127.0.0.1:4200/api", "http://localhost:4301/api", "http://[::1]:4200/api"])
def test_loopback_server_gets_the_credential(home, monkeypatch, url: str) -> None:
    monkeypatch.setenv("PREFECT_API_URL", url)
    assert use_local_credential() == home / "api_auth"
    import os

    assert os.environ["PREFECT_API_AUTH_STRING"] == "clip:s3cret"


@pytest.mark.parametrize(
    "setting",
    [
        {"PREFECT_API_URL": "https://prefect.example.org/api"},  # never sent to another host
        {"PREFECT_API_URL": "http://127.0.0.1:4200/api", "PREFECT_AUTH": "off"},
        {"PREFECT_API_URL": "http://127.0.0.1:4200/api", "PREFECT_API_AUTH_STRING": "user:own"},
        {},  # no server: Prefect's temporary in-process API
    ],
)
def test_credential_left_alone(home, monkeypatch, setting: dict) -> None:
    import os

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for k, v in setting.items():
        monkeypatch.setenv(k, v)
    assert use_local_credential() is None
    assert os.environ.get("PREFECT_API_AUTH_STRING") == setting.get("PREFECT_API_AUTH_STRING")
