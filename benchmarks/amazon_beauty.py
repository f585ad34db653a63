"""Former name of `python -m benchmarks.beauty` (kept so existing commands keep working)."""

from __future__ import annotations

from benchmarks.beauty import convert, main

__all__ = ["convert", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
