"""Ingest: read the shop's tables from any source, conform them to the dataset contract,
integrate them, and keep the central dataset."""
