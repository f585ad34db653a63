"""Candidate recommenders. Every family reduces to one representation: a vector per user and
a vector per product, score = user · product (biases folded into the product side), so one
exact, chunked top-N scorer serves evaluation and publishing for all of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class FactorModel:
    user_vectors: np.ndarray  # (n_users, d) float32
    item_vectors: np.ndarray  # (n_products, d) float32

    def save(self, path: Path) -> Path:
        np.savez(path, user_vectors=self.user_vectors, item_vectors=self.item_vectors)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> FactorModel:
        with np.load(path) as arrays:
            return cls(arrays["user_vectors"], arrays["item_vectors"])
