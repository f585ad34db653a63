"""The two atomic moves everything that others read is written with: a file replaced by a
complete new one, and a symlink pointed elsewhere. Readers (the website reading `latest`,
the nightly reading `models/champion`, the monitor reading its state) see the old thing
or the new one, never half of either: the new one is written under a hidden name, fsynced,
then renamed over the old one (rename is atomic on POSIX file systems).
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.artifacts import restrict


def fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a folder: so a rename in it survives
    a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(path: Path, text: str, private: bool = False) -> Path:
    """Replace `path` with `text` in one step. private: owner and group only (restrict)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    if private:
        restrict(partial)
    fsync(partial)
    os.replace(partial, path)
    return path


def switch_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` (a name beside it) in one step: a new symlink renamed over
    the old one, then the folder fsynced."""
    link = Path(link)
    staging = link.with_name(f".{link.name}-{os.getpid()}")
    staging.unlink(missing_ok=True)
    staging.symlink_to(target, target_is_directory=True)
    os.replace(staging, link)
    fsync(link.parent)
