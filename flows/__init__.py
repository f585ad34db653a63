"""Thin Prefect flows that compose the tasks of `tasks/`."""

import tasks as _tasks  # noqa: F401  (environment defaults before Prefect is imported)
