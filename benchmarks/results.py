"""Where every benchmark leaves its figures: `docs/results/<name>.json`.

Each benchmark still prints its figures (its last line one JSON object); it also writes them
here with the command that produced them, the date and the machine, and `docs/render.py`
renders the tables of the documentation from these files (never typed by hand). Re-running
a benchmark's command refreshes its file; `make docs` then refreshes the pages.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).absolute().parent.parent / "docs" / "results"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def command_line(module: str, argv: list[str]) -> str:
    """The command that re-runs the benchmark as it was run."""
    return " ".join([".venv/bin/python", "-m", module, *(shlex.quote(a) for a in argv)])


def record(
    name: str, module: str, argv: list[str], figures: dict[str, Any], out: Path | None = None
) -> Path:
    """Write `figures` to docs/results/<name>.json (or `out`) with their provenance."""
    path = Path(out) if out is not None else RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "command": command_line(module, argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": figures,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    print(f"results written to {path}", file=sys.stderr)  # stdout's last line stays the JSON
    return path
