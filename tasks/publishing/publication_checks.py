"""The last check before `latest` moves: is this publication plausibly a shop's lists?

Why: the gate judges a model on held-out purchases, not the lists the shop will serve.
Lists can still come out empty or shrunken when nothing is wrong with the model: every
product out of stock, a rule that blocks most of the catalogue, a source that lost most
users overnight. Serving that would replace good lists with none. So a publication is
refused, with the numbers, when it is empty, or when it has far fewer rows, users with a
list or products shown than the version `latest` serves (below `min_share_of_latest` of
each; 0 turns the comparison off, an empty publication is always refused).

Pure core (`refusals`) and the figures it compares (`PublicationFigures`, read from the
written partitions or from a manifest); `tasks/publishing/publish.py` calls it before the switch.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel


class PublicationFigures(BaseModel):
    rows: int
    users_with_list: int
    products_shown: int

    @classmethod
    def of_parts(cls, parts: list[Path]) -> PublicationFigures:
        """Counted on the partition files (two columns read, no rows held in Python)."""
        if not parts:
            return cls(rows=0, users_with_list=0, products_shown=0)
        table = pa.concat_tables(pq.read_table(p, columns=["user_id", "product_id"]) for p in parts)
        return cls(
            rows=table.num_rows,
            users_with_list=pc.count_distinct(table["user_id"]).as_py(),
            products_shown=pc.count_distinct(table["product_id"]).as_py(),
        )

    @classmethod
    def of_manifest(cls, manifest: dict) -> PublicationFigures | None:
        """What a published version recorded; None for versions that predate the check."""
        try:
            return cls(
                rows=manifest["row_count"],
                users_with_list=manifest["users_with_list"],
                products_shown=manifest["products_shown"],
            )
        except KeyError:
            return None


LABELS = {
    "rows": "rows",
    "users_with_list": "users with a list",
    "products_shown": "products shown (catalogue coverage)",
}


def refusals(
    candidate: PublicationFigures,
    serving: PublicationFigures | None,
    min_share_of_latest: float,
    serving_version: str | None = None,
) -> list[str]:
    """Why `candidate` must not replace `serving`; empty when it may."""
    if candidate.rows == 0:
        return ["the publication is empty: 0 rows (no product could be recommended to anyone)"]
    if serving is None or min_share_of_latest <= 0:
        return []
    reasons = []
    for key, label in LABELS.items():
        new, old = getattr(candidate, key), getattr(serving, key)
        if old and new < min_share_of_latest * old:
            reasons.append(
                f"{label}: {new:,}, {new / old:.0%} of the {old:,} that `latest` "
                f"({serving_version}) serves, below min_share_of_latest "
                f"{min_share_of_latest:.0%}"
            )
    return reasons
