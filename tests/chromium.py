"""Headless Chromium for the page tests: benchmarks/screenshot_report.py drives it (DevTools);
here is what a test does when it is missing. `make test` installs it (`make chromium`), so
under CI=true a missing chromium fails the test; elsewhere the test is skipped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from benchmarks.screenshot_report import DevTools, chromium


def require_chromium() -> None:
    if shutil.which("chromium") is None:
        reason = "Debian's chromium package is not installed: `make chromium` installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def browser() -> Iterator[DevTools]:
    """An offline headless Chromium with a new empty profile (see `chromium`)."""
    require_chromium()
    with chromium() as tools:
        yield tools
