"""manifest.json of a published version: what it holds, what it was built from, and the
sha256 of every file (the website, rollback, the monitor and the next nightly read it).

Every key is part of the contract; Manifest declares them all, a version is validated
against it before `latest` moves, and its JSON Schema (docs/schemas/manifest.schema.json)
is generated from it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# the columns a list's content is: what the shop shows, not when it was written
CONTENT_COLUMNS = ["user_id", "rank", "product_id", "reason", "tier", "variant"]


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ExperimentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    control_share: float


class RuleCompliance(BaseModel):
    """How many published lists meet one list rule, checked on the lists themselves."""

    model_config = ConfigDict(extra="forbid")
    met: int = Field(description="lists that meet the rule (min_categories: in the shown slots)")
    unmet: int = Field(description="lists that do not")
    share_met: float
    why_unmet: str = Field(description="why a list cannot meet it")


WHY_UNMET = {
    "min_categories": "the user's eligible products (not bought, in stock, not "
    "contraindicated, within the brand cap) span fewer categories",
    "max_per_brand": "never: the cap is applied to every list",
    "contraindications": "never: flagged products are blocked before ranking",
}


def rule_compliance(counts: dict[str, int]) -> dict[str, RuleCompliance]:
    """Summed `<rule>_met` / `<rule>_unmet` counts → one record per rule."""
    rules = [key.removesuffix("_met") for key in counts if key.endswith("_met")]
    return {
        rule: RuleCompliance(
            met=counts[f"{rule}_met"],
            unmet=counts[f"{rule}_unmet"],
            share_met=round(
                counts[f"{rule}_met"] / max(counts[f"{rule}_met"] + counts[f"{rule}_unmet"], 1), 6
            ),
            why_unmet=WHY_UNMET.get(rule, ""),
        )
        for rule in rules
    }


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_version: str = Field(description="the version id (tasks/versions.py)")
    created_at: str = Field(description="when the model was registered (ISO 8601, UTC)")
    data_until: str | None = Field(description="the newest event the lists saw (ISO 8601)")
    run_id: str | None = Field(description="the nightly run that published it")
    model_sha256: str = Field(description="sha256 of the model artifact in the registry")
    data_fingerprint: str
    data_counts: dict[str, int] = Field(description="rows per table the lists were built from")
    sources: dict[str, str] = Field(description="where each table came from (passwords masked)")
    top_n: int
    rules: dict = Field(description="the publishing rules of dataset.toml, as applied")
    rule_compliance: dict[str, RuleCompliance] = Field(
        default_factory=dict,
        description="per list rule of dataset.toml, the published lists that meet it",
    )
    user_count: int
    users_with_list: int
    products_shown: int
    users_per_tier: dict[str, int]
    catalog_coverage_per_tier: dict[str, float]
    users_per_variant: dict[str, int]
    experiment: ExperimentRecord
    columns: list[str] = Field(description="the columns of recommendations.parquet")
    sorted_by: list[str]
    row_count: int
    files: dict[str, FileEntry] = Field(description="sha256 of every file of the version")
    content_sha256: str | None = Field(
        None,
        description="sha256 of the lists' content (user_id, rank, product_id, reason, tier, "
        "variant, in file order): equal for two publications of the same lists, however "
        "and whenever written (None: published by an older version)",
    )
    deterministic: bool | None = Field(
        None,
        description="the run's training is repeatable (no Hogwild LightFM): the same inputs "
        "publish the same lists (None: published by an older version)",
    )
