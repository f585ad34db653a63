"""Validation: a Great Expectations suite per table; bad rows quarantined with their
reasons, broken tables stop the run."""
