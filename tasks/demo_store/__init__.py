"""The demo store's old address, kept so that `python -m tasks.demo_store` and
`tasks.demo_store.GroundTruth` go on working; the simulator lives in `demo_store/`."""

from demo_store import *  # noqa: F403
from demo_store import __all__  # noqa: F401
