"""Features and split: the held-out transactions, and the user and product feature matrices."""
