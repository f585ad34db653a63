"""The pipeline's work, one concern per module. Importing the package first turns
telemetry off (no internet here; nightly jobs must not phone home)."""

from tasks import settings as _settings  # noqa: F401  (sets the environment defaults)
