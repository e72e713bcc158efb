"""Ray token authentication for the Rays we start: on unless the user chose RAY_AUTH_MODE=disabled; token file 0600.

Ray (>= 2.60) reads the token from RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token;
every process of the cluster and every client must see the same token. Ray writes a token it generates
itself with the umask's mode (0644 under the usual 022), readable by every local user, so we create
the file first, owner-only. `python -m infra.ray_auth` does that for the scripts and prints the path.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DISABLED_WARNING = (
    "RAY_AUTH_MODE=disabled: this Ray accepts work from anyone who can reach its ports (on a shared host: "
    "every local user), and runs it as you. Unset RAY_AUTH_MODE to keep token authentication."
)


def auth_disabled() -> bool:
    """Did the user opt out of token authentication (RAY_AUTH_MODE=disabled)?"""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "disabled"


def token_path() -> Path:
    """Where Ray looks for the token file: RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def ensure_token() -> Path | None:
    """Create Ray's token file (random 256 bits, mode 0600) unless it exists; tighten a group/world-readable one.

    Returns its path, or None when the token comes from RAY_AUTH_TOKEN (nothing on disk)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # Written whole under a temp name, then linked into place: a process starting Ray at the same moment
        # sees no file or the whole token, never an empty one; the first link wins, the others keep its token.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))  # as Ray's own generator: 32 random bytes, hex
            os.link(tmp, path)
            log.info("Ray authentication token written to %s (mode 0600)", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); set to 0600", path, mode)
        os.chmod(path, 0o600)
    return path


def prepare_local_ray() -> bool:
    """Before starting a Ray of our own: token mode unless the user opted out; returns whether tokens are on.

    RAY_AUTH_MODE is left as the user set it (unset: Ray 2.60 turns token mode on for a new local cluster)."""
    if auth_disabled():
        log.warning(DISABLED_WARNING)
        return False
    ensure_token()
    return True


if __name__ == "__main__":  # infra/scripts/ray_head.sh: make sure the token file exists, owner-only
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    print(ensure_token() or "RAY_AUTH_TOKEN")
