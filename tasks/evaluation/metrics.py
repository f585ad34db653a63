"""The metrics contract: what one candidate measured on the held-out transactions.

On disk (metrics.json, the registry's model.json) a candidate's metrics are one flat JSON
object whose keys other programs read: `NDCG@10`, `HR@5`, `NDCG@10[cold_users]`,
`n[cold_users]`, `NDCG@10[rules:none]`, ... This model has exactly those keys (as aliases
of typed fields), so a file is validated when it is read and a key cannot go missing when
it is written; code reads the typed fields (`metrics.ndcg_at_10`,
`metrics.segment("cold_users")`, `metrics.rule_costs`) instead of parsing key strings.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

PRIMARY = "NDCG@10"
KS: tuple[int, ...] = (5, 10, 20)
AT_K = ("NDCG", "HR", "precision", "recall", "MAP")
SEGMENTS: tuple[str, ...] = ("cold_users", "warm_users", "new_products")
RULES_PATTERN = r"^NDCG@10\[rules:([^\]]+)\]$"  # portable (ECMA 262) for the JSON Schema
RULES_KEY = re.compile(RULES_PATTERN)
NO_RULES = "none"
BOOTSTRAP_SAMPLES = 1000


def bootstrap_means(
    values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> np.ndarray:
    """The mean of `values` over `samples` resamplings of the users with replacement (in
    batches of 100 resamples, so memory stays at 100 × users); seeded, so a rerun gives
    the same interval. Serves the interval of NDCG@10 and the gate's paired comparison."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(1)
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            values[rng.integers(0, len(values), size=(min(100, samples - b), len(values)))].mean(1)
            for b in range(0, samples, 100)
        ]
    )


def _rules_only(schema: dict[str, Any]) -> None:
    """JSON Schema: no keys beyond the declared ones but the rules' costs."""
    schema["additionalProperties"] = False
    schema["patternProperties"] = {RULES_PATTERN: {"type": "number"}}


class SegmentMetrics(BaseModel):
    """NDCG@10 on one segment of the test users, and how many users it holds."""

    ndcg_at_10: float
    users: int


def _python_name(key: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", key.replace("@", "_at_")).strip("_").lower()


class _CandidateMetricsBase(BaseModel):
    """Methods of CandidateMetrics (its fields are declared below, from KS and SEGMENTS)."""

    # extra keys are only the publishing rules' costs (checked below); strict otherwise
    model_config = ConfigDict(
        populate_by_name=True, extra="allow", frozen=True, json_schema_extra=_rules_only
    )

    @model_validator(mode="after")
    def _only_rule_costs_as_extra(self) -> Any:
        for key, value in (self.model_extra or {}).items():
            if not RULES_KEY.match(key) or not isinstance(value, int | float):
                raise ValueError(
                    f"unknown metric {key!r}: a candidate's metrics are the fixed keys of "
                    "CandidateMetrics and NDCG@10[rules:<rule>] numbers"
                )
        return self

    def segment(self, name: str) -> SegmentMetrics:
        return SegmentMetrics(
            ndcg_at_10=getattr(self, _python_name(f"{PRIMARY}[{name}]")),
            users=getattr(self, _python_name(f"n[{name}]")),
        )

    @property
    def rule_costs(self) -> dict[str, float]:
        """NDCG@10 of the candidate under each publishing rule (`none`: no rule)."""
        return {
            match[1]: float(value)
            for key, value in (self.model_extra or {}).items()
            if (match := RULES_KEY.match(key))
        }

    def with_rule_costs(self, costs: dict[str, float]) -> CandidateMetrics:
        """These metrics plus NDCG@10 under each rule (rule name → NDCG@10)."""
        return type(self).model_validate(
            self.flat() | {f"{PRIMARY}[rules:{rule}]": value for rule, value in costs.items()}
        )

    def flat(self) -> dict[str, float]:
        """The on-disk form: every key as other programs read it."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def __getitem__(self, key: str) -> float:
        """metrics["NDCG@10"]: the on-disk key, for readers written against the JSON."""
        return self.flat()[key]

    def get(self, key: str, default: float | None = None) -> float | None:
        return self.flat().get(key, default)


def _fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}

    def add(key: str, kind: type, description: str, default: Any = ...) -> None:
        fields[_python_name(key)] = (kind, Field(default, alias=key, description=description))

    for k in KS:
        add(f"NDCG@{k}", float, f"normalised discounted cumulative gain of the top {k}")
        add(f"HR@{k}", float, f"share of test users whose held-out product is in the top {k}")
        add(f"precision@{k}", float, f"precision of the top {k} (one relevant product)")
        add(f"recall@{k}", float, f"recall of the top {k} (one relevant product)")
        add(f"MAP@{k}", float, f"mean average precision of the top {k}")
    add("MRR", float, "mean reciprocal rank of the held-out product")
    add(f"{PRIMARY}_ci95_low", float, "bootstrap 95% interval of NDCG@10, lower end")
    add(f"{PRIMARY}_ci95_high", float, "bootstrap 95% interval of NDCG@10, upper end")
    add("catalog_coverage@10", float, "share of the catalogue in anyone's top 10")
    add("novelty@10", float, "mean self-information of the recommended products")
    add("diversity@10", float | None, "share of pairs in a list from different categories", None)
    add("nan_score_share", float, "share of NaN scores (a broken model)")
    add("constant_score_share", float, "share of users with one score for every product")
    add("n_test_users", int, "test users the candidate was evaluated on")
    for segment in SEGMENTS:
        add(f"{PRIMARY}[{segment}]", float, f"NDCG@10 on {segment.replace('_', ' ')}")
        add(f"n[{segment}]", int, f"test users among {segment.replace('_', ' ')}")
    return fields


CandidateMetrics = create_model(  # type: ignore[call-overload]
    "CandidateMetrics",
    __base__=_CandidateMetricsBase,
    __doc__="One candidate's metrics on the test users (the keys of metrics.json).",
    **_fields(),
)
