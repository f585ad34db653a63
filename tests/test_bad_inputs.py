"""A corpus of bad inputs, one test each. Every case either quarantines exactly the bad rows
(asserted by id) and publishes, or fails with a message naming the file, the column and the
rule; rows read = clean + quarantined in every case; a failure never replaces the last good
version."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.gate import GateParams
from tasks.models.lightfm_hybrid import LightFMParams
from tasks.publish import current_latest

from .conftest import REPO, raw_store_tables

# The tiny store has only 80 products: one bad product is 1.25% of the table, so the
# corpus allows 5% per table (the default, 1%, is tested in test_validation.py).
FAST = dict(
    model=LightFMParams(no_components=4, epochs=2),
    gate=GateParams(min_lift=-1.0),
    max_quarantine_share=0.05,
)


@dataclass
class Shop:
    folder: Path
    users: pd.DataFrame
    products: pd.DataFrame
    events: pd.DataFrame
    expected: dict[str, set] = field(default_factory=dict)  # table -> quarantined ids

    def write(self) -> None:
        for name in ("users", "products", "events"):
            path = self.folder / f"{name}.csv"
            if path.exists():
                getattr(self, name).to_csv(path, index=False)

    def quiet_product(self) -> str:
        """A product with few events, so quarantining it and its events stays under 1%."""
        counts = self.events["product_id"].value_counts()
        counts = counts[counts >= 2]
        return str(counts.index[-1])

    def rows(self, event_type: str, n: int = 1) -> pd.Index:
        return self.events.index[self.events["event_type"] == event_type][:n]


@pytest.fixture(scope="module")
def good_version(tmp_path_factory, tiny_store_db):
    """A published version from clean data, copied into every case's data root."""
    root = tmp_path_factory.mktemp("good")
    folder = _write_shop(root / "shop", tiny_store_db)
    nightly(NightlyParams(source=str(folder), data_root=root / "data", **FAST))
    return root / "data" / "published"


def _write_shop(folder: Path, tiny_store_db: Path) -> Path:
    folder.mkdir(parents=True)
    for name, frame in raw_store_tables(tiny_store_db).items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    shutil.copy(REPO / "dataset.toml", folder / "dataset.toml")
    return folder


@pytest.fixture
def shop(tmp_path, tiny_store_db) -> Shop:
    folder = _write_shop(tmp_path / "shop", tiny_store_db)
    tables = {
        n: pd.read_csv(folder / f"{n}.csv", dtype=str) for n in ("users", "products", "events")
    }
    return Shop(folder, **tables)


def run_case(shop: Shop, good_version: Path, tmp_path: Path):
    data_root = tmp_path / "data"
    shutil.copytree(good_version, data_root / "published", symlinks=True)
    before = current_latest(data_root / "published")
    try:
        summary = nightly(NightlyParams(source=str(shop.folder), data_root=data_root, **FAST))
    except Exception as error:  # noqa: BLE001 (the failing cases inspect it)
        assert current_latest(data_root / "published") == before
        assert sorted(p.name for p in (data_root / "published").iterdir()) == sorted(
            p.name for p in good_version.iterdir()
        )
        return None, error, data_root
    # This run published (when the bad rows are quarantined the clean data may equal the
    # good run's, so the version id may be the same: the manifest names the run).
    manifest = json.loads((data_root / "published" / "latest" / "manifest.json").read_text())
    assert manifest["run_id"] == summary.run_id
    accounting = json.loads(
        (data_root / "runs" / summary.run_id / "row_accounting.json").read_text()
    )
    for account in accounting.values():
        assert account["read"] == account["clean"] + account["quarantined"]
    return summary, None, data_root


def quarantined_ids(data_root: Path, summary, table: str) -> set:
    path = data_root / "runs" / summary.run_id / "quarantine" / f"{table}.parquet"
    if not path.exists():
        return set()
    key = {"users": "user_id", "products": "product_id", "events": "event_id"}[table]
    return set(pd.read_parquet(path)[key])


# ---- cases that quarantine exactly the bad rows --------------------------------------


def text_in_numeric(shop: Shop):
    row = shop.rows("purchase")
    shop.events.loc[row, "quantity"] = "two"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def null_user_id(shop: Shop):
    without_events = ~shop.users["user_id"].isin(shop.events["user_id"])
    row = shop.users.index[without_events][:1]
    shop.users.loc[row, "user_id"] = ""
    shop.expected["users"] = {None}


def duplicate_product_ids(shop: Shop):
    product = shop.quiet_product()
    shop.products = pd.concat(
        [shop.products, shop.products[shop.products["product_id"] == product]]
    )
    shop.expected["products"] = {product}
    shop.expected["events"] = set(shop.events.loc[shop.events["product_id"] == product, "event_id"])


def duplicate_events(shop: Shop):
    repeats = shop.events.iloc[[10, 20, 30]]
    shop.events = pd.concat([shop.events, repeats])
    shop.expected["events"] = set(repeats["event_id"])


def orphan_foreign_keys(shop: Shop):
    rows = shop.events.index[[5, 6]]
    shop.events.loc[rows[0], "product_id"] = "P-GHOST"
    shop.events.loc[rows[1], "user_id"] = "U-GHOST"
    shop.expected["events"] = set(shop.events.loc[rows, "event_id"])


def unknown_category(shop: Shop):
    product = shop.quiet_product()
    shop.products.loc[shop.products["product_id"] == product, "category"] = "spaceship"
    shop.expected["products"] = {product}
    shop.expected["events"] = set(shop.events.loc[shop.events["product_id"] == product, "event_id"])


def negative_price(shop: Shop):
    product = shop.quiet_product()
    shop.products.loc[shop.products["product_id"] == product, "price"] = "-5"
    shop.expected["products"] = {product}
    shop.expected["events"] = set(shop.events.loc[shop.events["product_id"] == product, "event_id"])


def absurd_unit_price(shop: Shop):
    row = shop.rows("purchase")
    shop.events.loc[row, "unit_price"] = str(float(shop.events.loc[row[0], "unit_price"]) * 1000)
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def zero_quantity(shop: Shop):
    row = shop.rows("purchase")
    shop.events.loc[row, "quantity"] = "0"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def negative_quantity(shop: Shop):
    row = shop.rows("add_to_cart")
    shop.events.loc[row, "quantity"] = "-3"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def huge_outlier_quantity(shop: Shop):
    row = shop.rows("purchase")
    shop.events.loc[row, "quantity"] = "500"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def rating_out_of_range(shop: Shop):
    row = shop.rows("review")
    shop.events.loc[row, "rating"] = "7"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def future_timestamp(shop: Shop):
    row = shop.rows("view")
    shop.events.loc[row, "occurred_at"] = "2099-01-01 00:00:00"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def unparseable_date(shop: Shop):
    row = shop.rows("like")
    shop.events.loc[row, "occurred_at"] = "31/31/2025 25:61"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


def before_store_start(shop: Shop):
    row = shop.rows("view")
    shop.events.loc[row, "occurred_at"] = "1999-12-31 23:59:59"
    shop.expected["events"] = set(shop.events.loc[row, "event_id"])


QUARANTINE_CASES: dict[str, Callable[[Shop], None]] = {
    f.__name__: f
    for f in (
        text_in_numeric,
        null_user_id,
        duplicate_product_ids,
        duplicate_events,
        orphan_foreign_keys,
        unknown_category,
        negative_price,
        absurd_unit_price,
        zero_quantity,
        negative_quantity,
        huge_outlier_quantity,
        rating_out_of_range,
        future_timestamp,
        unparseable_date,
        before_store_start,
    )
}


@pytest.mark.parametrize("case", list(QUARANTINE_CASES))
def test_bad_rows_are_quarantined_exactly(case, shop, good_version, tmp_path):
    QUARANTINE_CASES[case](shop)
    shop.write()
    summary, error, data_root = run_case(shop, good_version, tmp_path)
    assert error is None, error
    for table in ("users", "products", "events"):
        got = quarantined_ids(data_root, summary, table)
        want = shop.expected.get(table, set())
        if want == {None}:  # a row without an id: one row, its id missing
            assert len(got) == 1 and pd.isna(next(iter(got))), got
        else:
            assert got == {str(i) for i in want}, (table, got ^ {str(i) for i in want})


# ---- cases that are not errors ------------------------------------------------------


def test_extra_unknown_column_is_carried_not_used(shop, good_version, tmp_path):
    shop.users["loyalty_tier"] = "gold"
    shop.write()
    summary, error, data_root = run_case(shop, good_version, tmp_path)
    assert error is None, error
    assert all(quarantined_ids(data_root, summary, t) == set() for t in ("users", "events"))
    users = pd.read_parquet(data_root / "runs" / summary.run_id / "snapshot" / "users.parquet")
    assert (users["loyalty_tier"] == "gold").all()


def test_unknown_event_type_is_ignored_and_counted(shop, good_version, tmp_path):
    shop.events.loc[shop.events.index[[2, 4]], "event_type"] = "teleport"
    shop.write()
    summary, error, data_root = run_case(shop, good_version, tmp_path)
    assert error is None, error
    assert summary.ignored_event_types == {"teleport": 2}
    assert quarantined_ids(data_root, summary, "events") == set()


def test_mixed_time_zones_are_read_as_the_same_instant(shop, good_version, tmp_path):
    rows = shop.events.index[:50]
    instants = pd.to_datetime(shop.events.loc[rows, "occurred_at"], utc=True)
    shop.events.loc[rows[::2], "occurred_at"] = (
        instants[::2].dt.tz_convert("Europe/Amsterdam").dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    )
    shop.events.loc[rows[1::2], "occurred_at"] = instants[1::2].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    shop.write()
    summary, error, data_root = run_case(shop, good_version, tmp_path)
    assert error is None, error
    snapshot = pd.read_parquet(data_root / "runs" / summary.run_id / "snapshot" / "events.parquet")
    by_id = snapshot.set_index("event_id")["occurred_at"]
    ids = shop.events.loc[rows, "event_id"]
    assert list(by_id.loc[ids]) == list(instants)


# ---- cases that stop the run --------------------------------------------------------


def empty_file(shop: Shop):
    (shop.folder / "events.csv").write_text("")


def header_only(shop: Shop):
    shop.events.iloc[:0].to_csv(shop.folder / "events.csv", index=False)


def missing_required_column(shop: Shop):
    shop.events.drop(columns="event_type").to_csv(shop.folder / "events.csv", index=False)


def non_utf8_bytes(shop: Shop):
    shop.users.loc[shop.users.index[0], "region"] = "Île-de-France"
    shop.users.to_csv(shop.folder / "users.csv", index=False, encoding="latin-1")


def broken_quoting(shop: Shop):
    text = (shop.folder / "events.csv").read_text()
    (shop.folder / "events.csv").write_text(text + '999999,U0000001,"P000001,view\n')


def truncated_parquet(shop: Shop):
    path = shop.folder / "products.parquet"
    shop.products.to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (shop.folder / "products.csv").unlink()


def parquet_with_another_schema(shop: Shop):
    renamed = shop.events.rename(columns={"user_id": "customer", "product_id": "sku"})
    renamed.to_parquet(shop.folder / "events.parquet", index=False)
    (shop.folder / "events.csv").unlink()


def all_null_feature_column(shop: Shop):
    shop.users["skin_type"] = ""
    shop.write()


def ten_times_fewer_rows(shop: Shop):
    shop.events = shop.events.iloc[: len(shop.events) // 10]
    shop.write()


def mostly_bad_rows(shop: Shop):
    shop.events.loc[shop.events["event_type"] == "purchase", "quantity"] = "0"
    shop.write()


def prices_in_cents(shop: Shop):
    shop.products["price"] = (shop.products["price"].astype(float) * 100).astype(str)
    shop.write()


FAILING_CASES: dict[str, tuple[Callable[[Shop], None], str]] = {
    "prices_in_cents": (
        prices_in_cents,
        r"products\.csv: column 'price' failed expect_column_mean_to_be_between: observed \d+",
    ),
    "empty_file": (empty_file, r"events\.csv: EmptyDataError"),
    "header_only": (
        header_only,
        r"events\.csv: table failed expect_table_row_count_to_be_between: observed 0",
    ),
    "missing_required_column": (
        missing_required_column,
        r"events from .*events\.csv lacks required column\(s\) \['event_type'\]",
    ),
    "non_utf8_bytes": (
        non_utf8_bytes,
        r"users\.csv: UnicodeDecodeError: line 2 has byte 0xce, which is not UTF-8",
    ),
    "broken_quoting": (broken_quoting, r"events\.csv: ParserError"),
    "truncated_parquet": (truncated_parquet, r"products\.parquet: ArrowInvalid: .*magic bytes"),
    "parquet_with_another_schema": (
        parquet_with_another_schema,
        r"events\.parquet lacks required column\(s\) \['user_id', 'product_id'\]",
    ),
    "all_null_feature_column": (
        all_null_feature_column,
        r"users\.csv: column 'skin_type' failed expect_column_values_to_not_be_null",
    ),
    "ten_times_fewer_rows": (
        ten_times_fewer_rows,
        r"events\.csv: table failed expect_table_row_count_to_be_between: observed 1,?\d{3}\b",
    ),
    "mostly_bad_rows": (
        mostly_bad_rows,
        r"events\.csv: [\d,]+ of [\d,]+ rows \([\d.]+%\) quarantined, above max_quarantine_share"
        r" 5\.0%: .*column 'quantity' expect_column_values_to_be_between",
    ),
}


@pytest.mark.parametrize("case", list(FAILING_CASES))
def test_broken_input_stops_the_run_and_keeps_latest(case, shop, good_version, tmp_path):
    mutate, message = FAILING_CASES[case]
    mutate(shop)
    summary, error, _ = run_case(shop, good_version, tmp_path)
    assert summary is None, f"{case} should have stopped the run"
    assert re.search(message, str(error)), str(error)
