"""Checksums of files and model artifacts, and the check made before a model is loaded.

A model artifact is a folder of plain arrays (`.npz`, read with pickles refused) and JSON;
its sha256 is recorded in the registry when it is registered, and every process that
loads it (a scoring partition, possibly a Dask worker on another machine) recomputes it
first and refuses a mismatch: a file swapped or edited on disk is never read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tasks.errors import TamperedArtifactError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_sha256(path: Path) -> str:
    """sha256 of a model file, or of a model folder's files (names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(member.relative_to(path).as_posix().encode())
        digest.update(file_sha256(member).encode())
    return digest.hexdigest()


def verify_artifact(path: Path, expected_sha256: str) -> Path:
    """`path`, after checking that its files hash to `expected_sha256`; else refuse."""
    actual = artifact_sha256(path)
    if actual != expected_sha256:
        raise TamperedArtifactError(
            f"model artifact {path} does not match its registry entry: its files hash to "
            f"sha256 {actual}, the registry recorded {expected_sha256}. It was changed "
            "after it was registered; refusing to load it. Restore it from a trusted copy "
            "or retrain (run the nightly flow)."
        )
    return Path(path)


FOLDER_MODE = 0o750  # owner: everything; group (the website's reader): read and enter
FILE_MODE = 0o640  # others: nothing, whatever the process umask says


def restrict(path: Path) -> Path:
    """Set FOLDER_MODE / FILE_MODE on `path` and everything under it (published versions
    and registry entries hold customer-level data and models)."""
    path = Path(path)
    for member in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if member.is_symlink():
            continue
        member.chmod(FOLDER_MODE if member.is_dir() else FILE_MODE)
    return path
