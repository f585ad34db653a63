"""Training: candidate models (one module per family in models/), tuning, and the model registry."""
