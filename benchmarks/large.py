"""Benchmark: the `large` preset (500,000 users, 20,000 products, ~21M events) through the
whole nightly run on this machine; target under 30 minutes and under 12 GiB.

    /usr/bin/time -v python -m benchmarks.large            # builds data/bench/large if absent

Prints the run's summary and the seconds of every stage; the LAST line is one JSON object
with `wall_s`, `peak_rss_mib`, `stages` (stage → seconds) and `store_build_s`; the same
figures, with the run's model metrics, go to docs/results/large.json.
"""

from __future__ import annotations

import sys

from benchmarks.nightly import main as nightly_benchmark


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return nightly_benchmark(
        ["--preset", "large", *argv], name="large", module="benchmarks.large", command=argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
