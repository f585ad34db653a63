"""Evaluation: metrics of every candidate, the gate that decides, and the run's metrics document."""
