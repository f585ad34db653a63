"""`python -m tasks.demo_store.live` (the old address): the same as `python -m demo_store.live`."""

from demo_store.live import *  # noqa: F403
from demo_store.live import main

if __name__ == "__main__":
    raise SystemExit(main())
