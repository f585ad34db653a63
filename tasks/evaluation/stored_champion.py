"""The champion's stored model, judged on purchases it never saw.

Why: gate check (b) retrains the champion's configuration on today's split, so both
models come from today's code; a regression in that code (a feature built wrong, a changed
default) makes both worse together and passes. The model the champion published is kept
in the registry as it was: scored on the test users whose held-out purchase came after the
champion's data (`data_until`), it is judged on events it never saw, and the gate asks
that the challenger is not worse than it there (tasks/evaluation/gate.py).

The stored model indexes users and products as its own run's snapshot did; today's users
and products are mapped onto those (`Reindexed`). A user it never knew is left out (it
would have served that user the cold-start tier), a product it never knew cannot be in its
lists (a miss, as it would have been on the website); the comparison records both counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from tasks.features.interactions import index_of
from tasks.run_context import DataRoot
from tasks.training.models import Scorer, load_scorer

if TYPE_CHECKING:  # (the registry imports the metrics document, which imports this module)
    from tasks.evaluation.evaluate import Evaluation
    from tasks.training.registry import RegistryEntry


class StoredChampion(BaseModel):
    """What the comparison with the champion's stored model measured (metrics.json
    `stored_champion`); the per-user NDCG@10 are in evaluation/stored_champion_ndcg.parquet."""

    version: str
    data_until: datetime | None = Field(description="the newest event the stored model saw")
    test_users: int = Field(0, description="test users who bought after data_until, known to it")
    unknown_users: int = Field(0, description="such test users it never knew (left out)")
    unknown_products: int = Field(0, description="today's products it never knew")
    ndcg_challenger: float | None = Field(None, description="the challenger's NDCG@10 on them")
    ndcg_stored: float | None = Field(None, description="the stored model's NDCG@10 on them")
    why_not: str | None = Field(None, description="why it could not be measured")


@dataclass
class Reindexed:
    """A stored model scoring today's users and products: today's row → its row, today's
    product → its column (-1: unknown, never ranked)."""

    scorer: Scorer
    user_rows: np.ndarray
    item_columns: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_rows)

    @property
    def n_items(self) -> int:
        return len(self.item_columns)

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        known = self.item_columns >= 0
        out = np.full((len(user_rows), self.n_items), -np.inf, dtype=np.float32)
        theirs = self.scorer.scores(self.user_rows[user_rows])
        out[:, known] = theirs[:, self.item_columns[known]]
        return out


def _stored_model(
    data_root: Path, champion: RegistryEntry, users: pd.Series, products: pd.Series
) -> Reindexed | str:
    """The champion's artifact (checksum verified) mapped onto today's ids, or why not."""
    trained_on = DataRoot.of(data_root).run(champion.run_id) / "snapshot"
    tables = {name: trained_on / f"{name}.parquet" for name in ("users", "products")}
    if not all(path.exists() for path in tables.values()):
        return f"the snapshot it was trained on is gone ({trained_on})"
    model = DataRoot.of(data_root).model_artifact(champion.version)
    if not model.exists():
        return f"its artifact is gone ({model})"
    scorer = load_scorer(model, champion.artifact_sha256)  # a tampered artifact stops the run
    their_users = pd.read_parquet(tables["users"], columns=["user_id"])["user_id"]
    their_products = pd.read_parquet(tables["products"], columns=["product_id"])["product_id"]
    if (len(their_users), len(their_products)) != (scorer.n_users, scorer.n_items):
        return "its artifact does not match the snapshot it was trained on"
    return Reindexed(scorer, index_of(users, their_users), index_of(products, their_products))


def stored_champion_gains(
    data_root: Path,
    champion: RegistryEntry,
    evaluation: Evaluation,
    challenger: Scorer,
    users: pd.Series,
    products: pd.Series,
) -> tuple[StoredChampion, pd.DataFrame | None]:
    """(what was measured, per-user NDCG@10 of both on the test users who bought after the
    champion's data and whom it knew; None when it could not be measured)."""
    record = StoredChampion(version=champion.version, data_until=champion.data_until)
    if champion.data_until is None:
        why = "its registry entry does not say which data it saw (registered before data_until)"
        return record.model_copy(update={"why_not": why}), None
    stored = _stored_model(data_root, champion, users, products)
    if isinstance(stored, str):
        return record.model_copy(update={"why_not": stored}), None
    until = np.datetime64(champion.data_until.astimezone(UTC).replace(tzinfo=None), "ns")
    after = evaluation.bought_at > until
    known = stored.user_rows[evaluation.rows] >= 0
    judged = evaluation.only(after & known)
    record = record.model_copy(
        update={
            "test_users": len(judged.rows),
            "unknown_users": int((after & ~known).sum()),
            "unknown_products": int((stored.item_columns < 0).sum()),
        }
    )
    if len(judged.rows) == 0:
        why = (
            f"no test user known to it bought after its data ({champion.data_until:%Y-%m-%d %H:%M})"
        )
        return record.model_copy(update={"why_not": why}), None
    gains = pd.DataFrame(
        {
            "user_id": judged.user_ids,
            "challenger": judged.gains(challenger),
            "champion_stored": judged.gains(stored),
        }
    )
    return record.model_copy(
        update={
            "ndcg_challenger": float(gains["challenger"].mean()),
            "ndcg_stored": float(gains["champion_stored"].mean()),
        }
    ), gains
