"""Every error a user can cause, in one place, each kind with its own exit code.

Why one base: the command lines (`python -m flows.nightly`, `flows.monitor`,
`flows.rollback`) catch `RecsError` once and print its message alone, naming the file,
key or column and the rule; anything else is a bug and keeps its traceback. The message
is written for the shop's data engineer, so it says what to do, not where in our code.

| code | kind |
|---|---|
| 0 | published (or found already published) |
| 1 | an unexpected error: a bug (Python's traceback) |
| 2 | a bad command-line parameter |
| 3 | the gate refused the model |
| 4 | configuration: `dataset.toml`, a `RECS_*` setting, a path outside the allowed folders |
| 5 | a source could not be read (database, file, HTTP) |
| 6 | the data was refused (validation, joins, degenerate data) |
| 7 | storage: the data root or `published/` could not be written |
| 8 | another run holds the data root |
| 9 | the publication was refused by its own checks (the refit's canary; empty, far smaller) |
| 10 | nothing usable is published yet (monitoring, rollback to an unknown version) |
"""

from __future__ import annotations

import errno
import logging
from typing import ClassVar


class RecsError(Exception):
    """Something the user can cause and fix; `exit_code` tells scripts which kind."""

    exit_code: ClassVar[int] = 1


class ConfigError(RecsError):
    """`dataset.toml`, a setting or a path is wrong; nothing was read yet."""

    exit_code: ClassVar[int] = 4


class PathOutsideAllowedRootsError(ConfigError, ValueError):
    """A path resolves outside every allowed root (a ValueError too, so a pydantic
    validator raising it refuses the parameter)."""


class SourceError(RecsError):
    """A source could not be read; the message names the source and the table.

    `transient` errors (the database or API did not answer) are retried; the others (a
    missing table or column, a bad URL, a malformed page) would fail the same way again.
    """

    exit_code: ClassVar[int] = 5

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class DataValidationError(RecsError):
    """A table-level expectation failed or too many rows were bad; the message says where."""

    exit_code: ClassVar[int] = 6


class IntegrationError(DataValidationError):
    """Too many events join no user or product: the sources do not describe one shop."""


class DegenerateDataError(DataValidationError):
    """The clean data cannot train or evaluate a recommender (one user, one product, no
    transaction to hold out); the message says what is missing."""


class StorageError(RecsError):
    """A file under the data root could not be written (read-only, permissions, disk full)."""

    exit_code: ClassVar[int] = 7


class PublicationError(StorageError):
    """A version could not be written (disk full, permissions): `latest` did not move."""


class TamperedArtifactError(StorageError):
    """A model artifact's files do not hash to what the registry recorded."""


class DamagedPublicationError(StorageError, ValueError):
    """A published version's files do not match its manifest (or it has none)."""


class RunInProgressError(RecsError):
    """Another run holds the data root."""

    exit_code: ClassVar[int] = 8


class GateRefusedError(RecsError):
    """The candidate did not beat the baseline: nothing was published."""

    exit_code: ClassVar[int] = 3


class PublicationRefusedError(RecsError):
    """What was about to be published failed its own checks (the refit model's canary, or
    lists that are empty or far smaller than what `latest` serves): nothing was switched."""

    exit_code: ClassVar[int] = 9


class NotPublishedError(RecsError, ValueError):
    """The version asked for (or any version, or its training snapshot) is not on disk."""

    exit_code: ClassVar[int] = 10


class NotReproducedError(RecsError):
    """A version rebuilt from its recorded inputs differs from the published one
    (flows/reproduce.py): the message says where, decisions first, then lists."""

    exit_code: ClassVar[int] = 11


# A write refused by the machine, not by our code: reported as a StorageError by the CLIs.
STORAGE_ERRNOS = frozenset(
    {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}
)


def storage_error(error: OSError, doing: str) -> StorageError:
    """A StorageError naming the file, what the run was doing, and what to check."""
    where = error.filename or "the data root"
    return StorageError(
        f"could not {doing}: {where}: {error.strerror or error} "
        "(check that the data root and its folders are writable and the disk has space)"
    )


class _UserErrorsWithoutTraceback(logging.Filter):
    """Prefect logs a failed flow or task run with its traceback; for a RecsError the
    message is the whole story (a traceback would send the shop's engineer into our code).
    Any other exception keeps its traceback: that is a bug to report."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        refused_write = isinstance(error, OSError) and error.errno in STORAGE_ERRNOS
        if isinstance(error, RecsError) or refused_write:
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_user_errors() -> None:
    """Drop tracebacks of RecsErrors from Prefect's flow- and task-run logs (idempotent)."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsWithoutTraceback) for f in logger.filters):
            logger.addFilter(_UserErrorsWithoutTraceback())
