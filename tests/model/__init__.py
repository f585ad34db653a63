"""What the models learn and how they are judged: quality, tuning, refit, the gate."""
