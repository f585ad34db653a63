"""Data drift between the training window and the window since: one statistic per feature.

- categorical values (skin type, region, event type, product category): PSI, the
  population stability index Σ (cur − ref) · ln(cur / ref) over the values' shares;
- multi-valued cells (skin concerns "acne|pores"): PSI over the shares of each value;
- numeric values (birth year, price): the two-sample Kolmogorov-Smirnov statistic and
  p-value, and the Wasserstein distance in units of the reference's standard deviation
  (both from scipy.stats);
- product popularity: PSI over popularity bands (the training data's best sellers cut into
  ten bands of equal purchase share, plus bands for products never bought in training and
  for products the model has never seen). The bands come from all the training purchases,
  not from the reference window itself: bands fitted to the sample they are compared on
  are uniform on it by construction, and any other sample looks drifted.

Why these thresholds (defaults of DriftThresholds):
- PSI 0.2: the credit-scoring rule of thumb reads < 0.1 as stable, 0.1-0.25 as a shift
  worth watching, > 0.25 as a major shift; 0.2 acts a little before "major". Sampling
  noise alone gives PSI ≈ (bins − 1) / n, so a feature is only judged with at least
  `min_rows` rows on each side (≈ 0.05 noise at 200 rows and ten values).
- KS statistic 0.1 with p < 0.01: with thousands of rows tiny, harmless shifts are
  "significant", so the size of the shift (a 10-point gap between the two cumulative
  distributions) has to pass too.
- Wasserstein is reported (in reference standard deviations) to read the size of a shift,
  not used to decide.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from scipy import stats

MISSING = "(missing)"
NEW_PRODUCT_BAND = "not in training"


class DriftThresholds(BaseModel):
    """When a feature counts as drifted; see tasks/monitoring/drift.py for the reasoning."""

    psi: float = Field(0.2, gt=0, le=10, description="PSI at or above which a feature drifted")
    ks_statistic: float = Field(
        0.1, gt=0, le=1, description="KS statistic at or above which a numeric feature drifted"
    )
    ks_pvalue: float = Field(0.01, gt=0, le=1, description="... and its p-value below this")
    min_rows: int = Field(
        200, ge=10, description="fewer rows on either side: reported, never judged"
    )


class FeatureDrift(BaseModel):
    feature: str
    kind: str  # categorical | multi | numeric | popularity
    statistic: str  # PSI | KS
    value: float
    threshold: float
    drifted: bool
    judged: bool  # False when a side had fewer than min_rows rows
    n_reference: int
    n_current: int
    p_value: float | None = None
    wasserstein_sd: float | None = None
    top_changes: list[dict] = []  # the values whose share moved most (for the report)
    histogram: dict[str, list[float]] | None = None  # numeric: edges, reference, current


def shares(values: pd.Series) -> pd.Series:
    return values.fillna(MISSING).astype(str).value_counts(normalize=True)


def psi(reference: pd.Series, current: pd.Series, floor: float = 1e-4) -> float:
    """Population stability index between two share vectors indexed by value."""
    index = reference.index.union(current.index)
    ref = reference.reindex(index, fill_value=0).clip(lower=floor)
    cur = current.reindex(index, fill_value=0).clip(lower=floor)
    return float(((cur - ref) * np.log(cur / ref)).sum())


def _changes(reference: pd.Series, current: pd.Series, top: int = 12) -> list[dict]:
    index = reference.index.union(current.index)
    ref = reference.reindex(index, fill_value=0.0)
    cur = current.reindex(index, fill_value=0.0)
    moved = (cur - ref).abs().sort_values(ascending=False).index[:top]
    return [
        {"value": str(v), "reference": round(float(ref[v]), 4), "current": round(float(cur[v]), 4)}
        for v in moved
    ]


def share_drift(
    feature: str,
    kind: str,
    reference: pd.Series,
    current: pd.Series,
    thresholds: DriftThresholds,
    n_reference: int | None = None,
    n_current: int | None = None,
) -> FeatureDrift:
    """PSI of two samples of labels (one label per row)."""
    ref, cur = shares(reference), shares(current)
    n_ref = len(reference) if n_reference is None else n_reference
    n_cur = len(current) if n_current is None else n_current
    value = psi(ref, cur) if len(reference) and len(current) else 0.0
    judged = min(n_ref, n_cur) >= thresholds.min_rows
    return FeatureDrift(
        feature=feature,
        kind=kind,
        statistic="PSI",
        value=round(value, 4),
        threshold=thresholds.psi,
        drifted=judged and value >= thresholds.psi,
        judged=judged,
        n_reference=n_ref,
        n_current=n_cur,
        top_changes=_changes(ref, cur),
    )


def multi_drift(
    feature: str, reference: pd.Series, current: pd.Series, sep: str, thresholds: DriftThresholds
) -> FeatureDrift:
    """PSI over the values of multi-valued cells ("a|b"), rows counted once each."""

    def exploded(cells: pd.Series) -> pd.Series:
        return (
            cells.fillna("").astype(str).str.split(sep).explode().str.strip().replace("", MISSING)
        )

    return share_drift(
        feature,
        "multi",
        exploded(reference),
        exploded(current),
        thresholds,
        n_reference=len(reference),
        n_current=len(current),
    )


def numeric_drift(
    feature: str, reference: pd.Series, current: pd.Series, thresholds: DriftThresholds
) -> FeatureDrift:
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    judged = min(len(ref), len(cur)) >= thresholds.min_rows
    if len(ref) and len(cur):
        test = stats.ks_2samp(ref, cur)
        statistic, p_value = float(test.statistic), float(test.pvalue)
        spread = float(np.std(ref)) or 1.0
        distance = float(stats.wasserstein_distance(ref, cur)) / spread
    else:
        statistic, p_value, distance = 0.0, 1.0, 0.0
    histogram = None
    if len(ref) and len(cur):
        edges = np.unique(np.quantile(np.concatenate([ref, cur]), np.linspace(0, 1, 13)))
        if len(edges) > 1:
            histogram = {
                "edges": edges.round(4).tolist(),
                "reference": (np.histogram(ref, edges)[0] / len(ref)).round(4).tolist(),
                "current": (np.histogram(cur, edges)[0] / len(cur)).round(4).tolist(),
            }
    return FeatureDrift(
        feature=feature,
        kind="numeric",
        statistic="KS",
        value=round(statistic, 4),
        threshold=thresholds.ks_statistic,
        drifted=judged and statistic >= thresholds.ks_statistic and p_value < thresholds.ks_pvalue,
        judged=judged,
        n_reference=len(ref),
        n_current=len(cur),
        p_value=p_value,
        wasserstein_sd=round(distance, 4),
        histogram=histogram,
    )


def popularity_bands(reference_products: pd.Series, bands: int = 10) -> pd.Series:
    """product_id → band 1..bands: the reference's purchases cut into bands of equal
    share, best sellers in band 1."""
    counts = reference_products.value_counts()
    cumulative = counts.cumsum() / max(counts.sum(), 1)
    band = np.minimum((cumulative.to_numpy() * bands).astype(int) + 1, bands)
    return pd.Series([f"band {b:02d}" for b in band], index=counts.index)


def popularity_drift(
    training_products: pd.Series,
    reference_products: pd.Series,
    current_products: pd.Series,
    known_products: pd.Index,
    thresholds: DriftThresholds,
) -> FeatureDrift:
    """PSI of purchases over popularity bands of the training purchases; products the
    model never saw get a band of their own."""
    bands = popularity_bands(training_products)

    def label(products: pd.Series) -> pd.Series:
        banded = products.map(bands)
        unknown = ~products.isin(known_products)
        return banded.where(~unknown, NEW_PRODUCT_BAND).fillna("never bought in training")

    return share_drift(
        "product popularity",
        "popularity",
        label(reference_products),
        label(current_products),
        thresholds,
    )
