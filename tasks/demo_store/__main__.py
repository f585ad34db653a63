"""`python -m tasks.demo_store` (the old address): the same as `python -m demo_store`."""

from demo_store.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
