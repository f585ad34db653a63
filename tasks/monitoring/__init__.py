"""Monitoring: drift and live performance of the published version, and the decision to retrain."""
