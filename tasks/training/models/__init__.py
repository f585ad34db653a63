"""Candidate recommenders. Every family reduces to one representation: a matrix per user side
and per product side, score = user · product (biases folded into the product side). Either
side may be dense (LightFM embeddings) or sparse (a purchase history against an item-item
similarity or transition matrix), so one exact, chunked top-N scorer serves evaluation and
publishing for all of them. A `Blend` adds several such models, each normalised per user.

Each family is declared in its module (`family.Family`: name, parameters, fit, search space,
explanation) and registered in `families.py` (docs/adding-a-model.md).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from tasks.artifacts import verify_artifact

Matrix = np.ndarray | sp.csr_matrix


class Scorer(Protocol):
    """Anything the top-N selector can rank with."""

    @property
    def n_users(self) -> int: ...

    @property
    def n_items(self) -> int: ...

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        """(len(user_rows), n_items) float32 scores; higher is better."""
        ...


# A sparse product side up to this size is scored as a dense matrix: a sparse user row
# times dense columns is exact and ~5x faster than a sparse-sparse product whose result is
# a full row anyway (content profiles over 232 attributes × 20,000 products: 18.6 MB).
# Item-item matrices (20,000²) stay sparse.
DENSE_ITEM_BYTES = 64 * 2**20


def entries(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """matrix[rows[k], columns[k]] as a flat float64 array (scipy gives a sparse matrix,
    not an array, when there is nothing to look up)."""
    if len(rows) == 0:
        return np.zeros(0)
    return np.asarray(matrix[rows, columns], dtype=np.float64).ravel()


def _as_dense(scores: Matrix) -> np.ndarray:
    dense = scores.toarray() if sp.issparse(scores) else scores
    return np.asarray(dense, dtype=np.float32)


@dataclass
class FactorModel:
    user_vectors: Matrix  # (n_users, d) float32, dense or CSR
    item_vectors: Matrix  # (n_products, d) float32, dense or CSR
    _item_t: Matrix | None = field(default=None, init=False, repr=False)
    # (eligible product indices, their tiles) of the last fused scoring (tasks.publishing.scoring)
    _tiles: tuple | None = field(default=None, init=False, repr=False)

    @property
    def n_users(self) -> int:
        return self.user_vectors.shape[0]

    @property
    def n_items(self) -> int:
        return self.item_vectors.shape[0]

    def _product_side(self) -> Matrix:
        """The product side transposed (d, n_products), built once: dense unless sparse and
        larger than DENSE_ITEM_BYTES."""
        if self._item_t is None:
            items = self.item_vectors
            dense = not sp.issparse(items) or np.prod(items.shape) * 4 <= DENSE_ITEM_BYTES
            self._item_t = np.ascontiguousarray(_as_dense(items).T) if dense else items.T.tocsr()
        return self._item_t

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        return _as_dense(self.user_vectors[user_rows] @ self._product_side())

    def pair_terms(
        self, users: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The terms of score(users[k], items[k]) for a sparse user side (a purchase
        history): (pair k, the user-side column j, user[j] × product[j]) for every nonzero
        of the user's row. Only those entries of the product side are read (a row of a
        transition matrix can hold thousands)."""
        left = sp.csr_matrix(self.user_vectors[users])
        pair = np.repeat(np.arange(len(users)), np.diff(left.indptr))
        side = self._product_side()
        if sp.issparse(side):
            right = entries(self.item_vectors, items[pair], left.indices)
        else:  # a dense lookup: no search through sparse rows
            right = side[left.indices, items[pair]].astype(np.float64)
        return pair, left.indices, left.data * right

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """score(users[k], items[k]) for each pair, without scoring whole rows (a sparse
        user side: summed `pair_terms`)."""
        if sp.issparse(self.user_vectors):
            pair, _, terms = self.pair_terms(users, items)
            return np.bincount(pair, weights=terms, minlength=len(users)).astype(np.float32)
        left, right = self.user_vectors[users], self.item_vectors[items]
        if sp.issparse(right):
            return np.asarray(right.multiply(left).sum(axis=1), dtype=np.float32).ravel()
        return np.einsum("ij,ij->i", left, right, dtype=np.float32)

    def only_users(self, rows: np.ndarray) -> FactorModel:
        """The same model for `rows` only, the other users' vectors empty (a sparse user
        side holding just those rows): what tuning keeps of each validation check, a few
        MB instead of every user's embedding."""
        rows = np.unique(rows)
        kept = sp.csr_matrix(self.user_vectors[rows], dtype=np.float32)
        counts = np.zeros(self.n_users, dtype=np.int64)
        counts[rows] = np.diff(kept.indptr)
        user_side = sp.csr_matrix(
            (kept.data, kept.indices, np.concatenate([[0], np.cumsum(counts)])),
            shape=self.user_vectors.shape,
        )
        return FactorModel(user_side, self.item_vectors)

    def save(self, path: Path) -> Path:
        arrays: dict[str, np.ndarray] = {}
        for side, matrix in (("user", self.user_vectors), ("item", self.item_vectors)):
            if sp.issparse(matrix):
                matrix = sp.csr_matrix(matrix, dtype=np.float32)
                arrays |= {
                    f"{side}_data": matrix.data,
                    f"{side}_indices": matrix.indices,
                    f"{side}_indptr": matrix.indptr,
                    f"{side}_shape": np.asarray(matrix.shape),
                }
            else:
                arrays[f"{side}_vectors"] = np.asarray(matrix, dtype=np.float32)
        np.savez(path, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> FactorModel:
        with np.load(path, allow_pickle=False) as arrays:  # plain arrays only, never code

            def side(name: str) -> Matrix:
                if f"{name}_vectors" in arrays:
                    return arrays[f"{name}_vectors"]
                return sp.csr_matrix(
                    (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
                    shape=tuple(arrays[f"{name}_shape"]),
                )

            return cls(side("user"), side("item"))


SHARE_CHUNK_USERS = 512  # users whose full score rows are held at once by component_share


def _minmax_parts(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows rescaled to [0, 1], each row's minimum, each row's 1 / (max − min), 0 when the
    row has one value everywhere)."""
    scores = np.asarray(scores, dtype=np.float32)
    low = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - low
    scale = np.divide(np.float32(1.0), span, out=np.zeros_like(span), where=span > 0)
    rescaled = scores - low
    rescaled *= scale
    return rescaled, low.ravel(), scale.ravel()


def minmax_rows(scores: np.ndarray) -> np.ndarray:
    """Each row rescaled to [0, 1] (float32); a row with one value everywhere becomes zeros."""
    return _minmax_parts(scores)[0]


@dataclass
class _Ranges:
    """Per user, a component's score minimum and 1 / range, as the last scoring saw them."""

    low: np.ndarray
    scale: np.ndarray
    known: np.ndarray


@dataclass
class Blend:
    """score(u) = Σ weight_c · minmax(score_c(u)): every component on the same 0..1 scale
    per user, so a weight says how much that component's opinion counts. Components with
    weight 0 are kept for the cold-start tiers (hybrid, popularity) but do not score."""

    components: dict[str, FactorModel]
    weights: dict[str, float]
    # what `scores` saw of each component's rows, so explaining a list needs only the
    # listed pairs' scores (not every row scored again); filled by concurrent threads
    _ranges: dict[str, _Ranges] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def n_users(self) -> int:
        return next(iter(self.components.values())).n_users

    @property
    def n_items(self) -> int:
        return next(iter(self.components.values())).n_items

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        total = np.zeros((len(user_rows), self.n_items), dtype=np.float32)
        for name, weight in self.weights.items():
            if weight:
                normalised, low, scale = _minmax_parts(self.components[name].scores(user_rows))
                ranges = self._ranges_of(name)
                ranges.low[user_rows], ranges.scale[user_rows] = low, scale
                ranges.known[user_rows] = True
                normalised *= np.float32(weight)
                total += normalised
        return total

    def _ranges_of(self, name: str) -> _Ranges:
        with self._lock:
            if name not in self._ranges:
                n = self.n_users
                self._ranges[name] = _Ranges(
                    np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool)
                )
            return self._ranges[name]

    def component_share(self, name: str, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The component's per-user min-max score (its 0..1 opinion) for (user, item) pairs.
        Scored SHARE_CHUNK_USERS users at a time: a block of 16k users' full rows over 20k
        products would be 1.3 GB per component (memory, and page faults for time)."""
        component = self.components[name]
        ranges = self._ranges.get(name)
        if ranges is not None and ranges.known[users].all():  # these users were just scored
            raw = component.pair_scores(users, items)
            return (raw - ranges.low[users]) * ranges.scale[users]
        unique, where = np.unique(users, return_inverse=True)
        share = np.empty(len(users), dtype=np.float32)
        for begin in range(0, len(unique), SHARE_CHUNK_USERS):  # chunks, not users
            pick = np.flatnonzero((where >= begin) & (where < begin + SHARE_CHUNK_USERS))
            normalised = minmax_rows(component.scores(unique[begin : begin + SHARE_CHUNK_USERS]))
            share[pick] = normalised[where[pick] - begin, items[pick]]
        return share

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, component in self.components.items():
            component.save(folder / f"{name}.npz")
        (folder / "blend.json").write_text(json.dumps({"weights": self.weights}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> Blend:
        weights = json.loads((Path(folder) / "blend.json").read_text())["weights"]
        return cls(
            {name: FactorModel.load(Path(folder) / f"{name}.npz") for name in weights}, weights
        )


def load_scorer(path: Path, sha256: str | None = None) -> FactorModel | Blend:
    """A saved model: a Blend folder (with blend.json) or one FactorModel .npz file.

    sha256: the artifact's checksum as registered; when given, the files are hashed and
    compared before a single byte is parsed (TamperedArtifactError on a mismatch)."""
    path = Path(path)
    if sha256 is not None:
        verify_artifact(path, sha256)
    return Blend.load(path) if (path / "blend.json").exists() else FactorModel.load(path)
