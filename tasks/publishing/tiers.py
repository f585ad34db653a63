"""Cold-start tiers: who is served by which model.

- `history`: the user has events the models learn from → the full (published) model;
- `profile`: no history, but attributes (a declared user feature is filled in) → the
  hybrid LightFM scores them from their features alone;
- `popular`: nothing known → the best sellers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HISTORY, PROFILE, POPULAR = "history", "profile", "popular"
TIERS: tuple[str, ...] = (HISTORY, PROFILE, POPULAR)


def assign_tiers(
    users: pd.DataFrame, events: pd.DataFrame, feature_columns: list[str], weighted_types: list[str]
) -> np.ndarray:
    """One tier code per user (index into TIERS), in users-table order."""
    active = events.loc[events["event_type"].isin(weighted_types), "user_id"].unique()
    has_history = users["user_id"].isin(active).to_numpy()
    columns = [c for c in feature_columns if c in users]
    has_profile = (
        users[columns].notna().any(axis=1).to_numpy() if columns else np.zeros(len(users), bool)
    )
    return np.where(has_history, 0, np.where(has_profile, 1, 2)).astype(np.int8)
