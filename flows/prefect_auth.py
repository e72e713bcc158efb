"""The local Prefect server's credential for the project's own commands: read from its file, never copied by hand.

`infra/scripts/prefect_server.sh start` keeps a random `user:password` in `$PREFECT_HOME/api_auth` (mode 0600;
PREFECT_HOME defaults to the checkout's `.prefect`) and starts the server with it. Before Prefect is imported,
`use_local_credential` sets PREFECT_API_AUTH_STRING from that file, but only for a loopback PREFECT_API_URL: the
credential of this host's server is never sent anywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
CREDENTIAL_FILE = "api_auth"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def credential_paths() -> list[Path]:
    """Where the server script keeps the credential: $PREFECT_HOME, then the checkout's .prefect (the script's default)."""
    homes = [Path(os.environ["PREFECT_HOME"])] if os.environ.get("PREFECT_HOME") else []
    return [h / CREDENTIAL_FILE for h in [*homes, ROOT / ".prefect"]]


def use_local_credential() -> Path | None:
    """Set PREFECT_API_AUTH_STRING from the local server's credential file; return the file used (None: nothing set).

    Nothing changes when the variable is already set, PREFECT_AUTH=off, or PREFECT_API_URL is not on loopback."""
    if os.environ.get("PREFECT_API_AUTH_STRING") or os.environ.get("PREFECT_AUTH", "").lower() == "off":
        return None
    url = os.environ.get("PREFECT_API_URL")
    if not url or urlparse(url).hostname not in LOOPBACK:
        return None
    for path in credential_paths():
        if path.is_file():
            os.environ["PREFECT_API_AUTH_STRING"] = path.read_text().strip()
            return path
    return None
