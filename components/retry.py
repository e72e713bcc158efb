"""Storage I/O with retries: transient errors back off and retry, then fail naming the URL; a full disk fails at once."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that another attempt cannot fix: the caller has the wrong path or no rights.
PERMANENT = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
FULL = {errno.ENOSPC, errno.EDQUOT}


class StorageError(OSError):
    """A storage operation that failed for good; the message names the operation and the URL."""


class StorageFullError(StorageError):
    """No space left (or quota exhausted) on the storage behind a URL: retrying would only truncate again."""


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries with exponential back-off `base_s * 2**i`, capped at `max_s`."""

    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 8.0

    def delays(self) -> list[float]:
        return [min(self.max_s, self.base_s * 2**i) for i in range(self.attempts - 1)]


def default_policy() -> RetryPolicy:
    """The policy when a caller passes none: 5 attempts over about 7.5 s (env CLIP_IO_RETRIES, CLIP_IO_BACKOFF_S)."""
    return RetryPolicy(
        attempts=max(1, int(os.environ.get("CLIP_IO_RETRIES", "5"))), base_s=float(os.environ.get("CLIP_IO_BACKOFF_S", "0.5"))
    )


def is_full(e: BaseException) -> bool:
    """True for ENOSPC/EDQUOT, also when wrapped (fsspec and object-store clients chain the original)."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in FULL:
            return True
        e = e.__cause__ or e.__context__
    return False


def full_error(what: str, url: str, e: BaseException) -> StorageFullError:
    msg = f"{what} {url}: no space left on the storage ({e}); free space or point the output elsewhere"
    return StorageFullError(errno.ENOSPC, msg)


def retry_io(fn: Callable[[], T], what: str, url: str, policy: RetryPolicy | None = None, sleep=time.sleep) -> T:
    """Call `fn()`; retry OSError/TimeoutError with back-off except permanent ones; ENOSPC raises StorageFullError at once.

    `what` and `url` name the operation in logs and in the final error ("upload checkpoint file s3://b/x").
    Only for idempotent operations (whole-file put/get/cat/pipe/move), never for a write into an open stream.
    """
    policy = policy or default_policy()
    delays = policy.delays()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except (StorageError, *PERMANENT):
            raise
        except (OSError, TimeoutError) as e:
            if is_full(e):
                raise full_error(what, url, e) from e
            if attempt == len(delays):
                raise StorageError(
                    errno.EIO, f"{what} {url} failed after {policy.attempts} attempt(s): {type(e).__name__}: {e}"
                ) from e
            log.warning("%s %s failed (%s: %s); retry %d/%d in %.2g s", what, url, type(e).__name__, e, attempt + 1,
                        policy.attempts - 1, delays[attempt])  # fmt: skip
            sleep(delays[attempt])
    raise AssertionError("unreachable")
