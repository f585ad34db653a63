"""Render a report page in headless Chromium, save a screenshot, fail on any console error.

    python -m benchmarks.screenshot_report data/runs/<run_id>/reports/evaluation_report.html \
        --out docs/evaluation_report.png

Chromium (Debian's `chromium` package; `make chromium` installs it) is started headless with a
new empty profile and without background networking (FLAGS), and driven over the DevTools
protocol; pages are opened offline (every http(s) request is blocked): a report must open
from its file alone. The page is loaded from the file, every console error, uncaught
exception and failed load is collected, and a full-page PNG is captured. Exit status 1
(with the errors listed) when there was any.
The LAST line is one JSON object: {"page", "screenshot", "console_errors", "width", "height"};
the same goes to docs/results/screenshot_report.json (`--results` for elsewhere).

`chromium()` is also what the tests use to open pages and ask their DOM (tests/chromium.py).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from benchmarks.results import record

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DevTools:
    """Just enough of the DevTools protocol: commands, and the events seen meanwhile."""

    def __init__(self, url: str) -> None:
        self.socket = connect(url, max_size=None)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.socket.recv(timeout=remaining)))

    def open(self, page: Path) -> list[str]:
        """Load a page from its file; return its console errors (see `console_errors`)."""
        self.events.clear()
        self.send("Page.navigate", url=Path(page).resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        return console_errors(self.events)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the open page (JSON-serialisable)."""
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")


def console_errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", "error"))
    return errors


@contextmanager
def chromium(width: int = 1280, binary: str = "chromium") -> Iterator[DevTools]:
    """A headless Chromium with a new empty profile, offline (http and https requests are
    blocked); yields the DevTools session of its page (Page, Runtime, Log, Network enabled)."""
    executable = shutil.which(binary)
    if executable is None:
        raise FileNotFoundError(f"{binary} not found: install Debian's chromium package")
    port = _free_port()
    # Its helper processes may still write to the profile as it is removed: no error then.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [
                executable,
                *FLAGS,
                f"--remote-debugging-port={port}",
                f"--user-data-dir={profile}",
                f"--window-size={width},900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with all its helpers
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                    target = next(t for t in targets if t["type"] == "page")
                    break
                except (httpx.HTTPError, StopIteration):
                    if time.monotonic() > deadline:
                        raise TimeoutError("chromium did not open its DevTools port") from None
                    time.sleep(0.2)
            tools = DevTools(target["webSocketDebuggerUrl"])
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.send(f"{domain}.enable")
            tools.send("Network.setBlockedURLs", urls=["http://*", "https://*"])
            try:
                yield tools
            finally:
                tools.socket.close()
        finally:
            os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(timeout=30)


def screenshot(page: Path, out: Path, width: int = 1280, binary: str = "chromium") -> dict:
    with chromium(width, binary) as tools:
        tools.open(page)
        metrics = tools.send("Page.getLayoutMetrics")["cssContentSize"]
        height = int(metrics["height"])
        shot = tools.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        )
        errors = console_errors(tools.events)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return {
        "page": str(page),
        "screenshot": str(out),
        "console_errors": errors,
        "width": width,
        "height": height,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screenshot_report")
    parser.add_argument("page", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation_report.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument(
        "--results", type=Path, default=None, help="default: docs/results/screenshot_report.json"
    )
    command = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if not args.page.exists():
        parser.error(f"no page at {args.page}")
    result = screenshot(args.page, args.out, args.width)
    for error in result["console_errors"]:
        print(f"console error: {error}")
    print(f"screenshot: {result['screenshot']} ({result['width']}×{result['height']} px)")
    record("screenshot_report", "benchmarks.screenshot_report", command, result, args.results)
    print(json.dumps(result))
    return 1 if result["console_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
