"""A corpus of hostile inputs, one test each, run through the command line's own entry
point (`flows.nightly.main`, what `python -m flows.nightly` runs). Every case either
quarantines exactly the bad rows (asserted by id) and publishes, or stops with the exit code
of its kind (tasks/errors.py) and a message naming the file, the key or column and the
rule. In every case: no traceback on stderr; rows read = clean + quarantined; a refused run
leaves `latest` where it was, with its files matching its manifest's sha256."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from flows.nightly import main, nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import GateParams
from tasks.publishing.publish import current_latest, verify_version
from tasks.training.models.lightfm_hybrid import LightFMParams

from tests.conftest import REPO, raw_store_tables

# The tiny store has only 80 products: one bad product is 1.25% of the table, so the
# corpus allows 5% per table (the default, 1%, is tested in test_validation.py).
FAST = dict(
    model=LightFMParams(no_components=4, epochs=2),
    gate=GateParams(min_lift=-1.0, relaxed_on_purpose="hostile input is under test"),
    max_quarantine_share=0.05,
)
FAST_ARGS = [
    "--model.no_components", "4", "--model.epochs", "2",
    "--gate.min_lift", "-1", "--max_quarantine_share", "0.05",
    "--gate.relaxed_on_purpose", "hostile input is under test",
]  # fmt: skip


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

    def user_without_events(self) -> pd.Index:
        """A user no event names, so changing them quarantines no event."""
        without_events = ~self.users["user_id"].isin(self.events["user_id"])
        return self.users.index[without_events][:1]

    def expect_product_quarantined(self, product: str) -> None:
        """The product and, as they then do not join, its events."""
        self.expected["products"] = {product}
        self.expected["events"] = set(
            self.events.loc[self.events["product_id"] == product, "event_id"]
        )

    @property
    def config(self) -> Path:
        return self.folder / "dataset.toml"

    def edit_config(self, old: str, new: str) -> None:
        text = self.config.read_text()
        assert old in text, old
        self.config.write_text(text.replace(old, new, 1))


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


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    data_root: Path
    run_id: str | None

    @property
    def message(self) -> str:
        """What the command line said to the user about the failure (its `error:` block)."""
        return self.stderr[self.stderr.find("error: ") :]

    def manifest(self) -> dict:
        return json.loads((self.data_root / "published" / "latest" / "manifest.json").read_text())


def run_case(shop: Shop, good_version: Path, tmp_path: Path, capfd, *args: str) -> Outcome:
    """`python -m flows.nightly --source <shop>` (in this process) on a data root that
    already serves a good version; checks what must hold whatever the case."""
    data_root = tmp_path / "data"
    shutil.copytree(good_version, data_root / "published", symlinks=True)
    before = current_latest(data_root / "published")
    capfd.readouterr()
    code = main(["--source", str(shop.folder), "--data_root", str(data_root), *FAST_ARGS, *args])
    stdout, stderr = capfd.readouterr()
    assert "Traceback" not in stderr, stderr[-3000:]
    runs = sorted((data_root / "runs").iterdir()) if (data_root / "runs").exists() else []
    run_id = runs[-1].name if runs else None
    if run_id and (data_root / "runs" / run_id / "row_accounting.json").exists():
        accounting = json.loads((data_root / "runs" / run_id / "row_accounting.json").read_text())
        for account in accounting.values():
            assert account["read"] == account["clean"] + account["quarantined"]
    published = data_root / "published"
    if code != 0:
        assert stderr.count("error: ") >= 1, stderr[-2000:]
        assert current_latest(published) == before
        assert verify_version(published / "latest")["model_version"] == before
        assert sorted(p.name for p in published.iterdir()) == sorted(
            p.name for p in good_version.iterdir()
        )
    else:
        # This run published (when the bad rows are quarantined the clean data may equal
        # the good run's, so the version id may be the same: the manifest names the run).
        manifest = json.loads((published / "latest" / "manifest.json").read_text())
        assert manifest["run_id"] == run_id
        verify_version(published / "latest")
    return Outcome(code, stdout, stderr, data_root, run_id)


def quarantined_ids(outcome: Outcome, table: str) -> set:
    path = outcome.data_root / "runs" / str(outcome.run_id) / "quarantine" / f"{table}.parquet"
    if not path.exists():
        return set()
    key = {"users": "user_id", "products": "product_id", "events": "event_id"}[table]
    return set(pd.read_parquet(path)[key])


# ---- cases that quarantine exactly the bad rows --------------------------------------


def bad_event_value(event_type: str, column: str, value, n: int = 1) -> Callable[[Shop], None]:
    """A case: the first `n` events of `event_type` get `value` in `column` (one value, or
    one per row); exactly those events are quarantined."""

    def case(shop: Shop):
        rows = shop.rows(event_type, n)
        shop.events.loc[rows, column] = value
        shop.expected["events"] = set(shop.events.loc[rows, "event_id"])

    return case


def bad_product_value(column: str, value: str) -> Callable[[Shop], None]:
    """A case: a quiet product gets `value` in `column`; it and its events are quarantined."""

    def case(shop: Shop):
        product = shop.quiet_product()
        shop.products.loc[shop.products["product_id"] == product, column] = value
        shop.expect_product_quarantined(product)

    return case


def null_user_id(shop: Shop):
    row = shop.user_without_events()
    shop.users.loc[row, "user_id"] = ""
    shop.expected["users"] = {None}


def signup_in_the_year_2999(shop: Shop):
    row = shop.user_without_events()
    shop.users.loc[row, "signup_at"] = "2999-01-01T00:00:00Z"
    shop.expected["users"] = set(shop.users.loc[row, "user_id"])


def duplicate_product_ids(shop: Shop):
    product = shop.quiet_product()
    shop.products = pd.concat(
        [shop.products, shop.products[shop.products["product_id"] == product]]
    )
    shop.expect_product_quarantined(product)


def duplicate_events(shop: Shop):
    repeats = shop.events.iloc[[10, 20, 30]]
    shop.events = pd.concat([shop.events, repeats])
    shop.expected["events"] = set(repeats["event_id"])


def orphan_foreign_keys(shop: Shop):
    rows = shop.events.index[[5, 6]]
    shop.events.loc[rows[0], "product_id"] = "P-GHOST"
    shop.events.loc[rows[1], "user_id"] = "U-GHOST"
    shop.expected["events"] = set(shop.events.loc[rows, "event_id"])


def absurd_unit_price(shop: Shop):
    row = shop.rows("purchase")
    price = float(shop.events.loc[row[0], "unit_price"])
    bad_event_value("purchase", "unit_price", str(price * 1000))(shop)


QUARANTINE_CASES: dict[str, Callable[[Shop], None]] = {
    "text_in_numeric": bad_event_value("purchase", "quantity", "two"),
    "null_user_id": null_user_id,
    "duplicate_product_ids": duplicate_product_ids,
    "duplicate_events": duplicate_events,
    "orphan_foreign_keys": orphan_foreign_keys,
    "unknown_category": bad_product_value("category", "spaceship"),
    "negative_price": bad_product_value("price", "-5"),
    "absurd_unit_price": absurd_unit_price,
    "zero_quantity": bad_event_value("purchase", "quantity", "0"),
    "negative_quantity": bad_event_value("add_to_cart", "quantity", "-3"),
    "huge_outlier_quantity": bad_event_value("purchase", "quantity", "500"),
    "rating_out_of_range": bad_event_value("review", "rating", "7"),
    "future_timestamp": bad_event_value("view", "occurred_at", "2099-01-01 00:00:00"),
    "unparseable_date": bad_event_value("like", "occurred_at", "31/31/2025 25:61"),
    "before_store_start": bad_event_value("view", "occurred_at", "1999-12-31 23:59:59"),
    "astronomical_quantity": bad_event_value("purchase", "quantity", ["1e30", "inf"], n=2),
    "unreadable_stock_flag": bad_product_value("in_stock", "maybe"),
    "event_in_the_year_2999": bad_event_value("purchase", "occurred_at", "2999-01-01 00:00:00"),
    "signup_in_the_year_2999": signup_in_the_year_2999,
    "launch_in_the_year_2999": bad_product_value("launched_at", "2999-06-01"),
}


@pytest.mark.parametrize("case", list(QUARANTINE_CASES))
def test_bad_rows_are_quarantined_exactly(case, shop, good_version, tmp_path, capfd):
    QUARANTINE_CASES[case](shop)
    shop.write()
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    for table in ("users", "products", "events"):
        got = quarantined_ids(outcome, table)
        want = shop.expected.get(table, set())
        if want == {None}:  # a row without an id: one row, its id missing
            assert len(got) == 1 and pd.isna(next(iter(got))), got
        else:
            assert got == {str(i) for i in want}, (table, got ^ {str(i) for i in want})
    # Only clean rows set the data's clock: the newest clean event, never a quarantined one.
    clean = pd.read_parquet(
        outcome.data_root / "runs" / outcome.run_id / "clean" / "events.parquet"
    )
    data_until = pd.Timestamp(outcome.manifest()["data_until"])
    assert data_until == clean["occurred_at"].max()
    assert outcome.manifest()["model_version"].startswith(f"{data_until:%Y%m%dT%H%M%SZ}")


# ---- cases that are not errors ------------------------------------------------------


def test_extra_unknown_column_is_carried_not_used(shop, good_version, tmp_path, capfd):
    shop.users["loyalty_tier"] = "gold"
    shop.write()
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    assert all(quarantined_ids(outcome, t) == set() for t in ("users", "events"))
    snapshot = outcome.data_root / "runs" / outcome.run_id / "snapshot" / "users.parquet"
    assert (pd.read_parquet(snapshot)["loyalty_tier"] == "gold").all()


def test_unknown_event_type_is_ignored_and_counted(shop, good_version, tmp_path, capfd):
    shop.events.loc[shop.events.index[[2, 4]], "event_type"] = "teleport"
    shop.write()
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    assert "event types ignored (no weight in dataset.toml): {'teleport': 2}" in outcome.stdout
    assert quarantined_ids(outcome, "events") == set()


def test_mixed_time_zones_are_read_as_the_same_instant(shop, good_version, tmp_path, capfd):
    rows = shop.events.index[:50]
    instants = pd.to_datetime(shop.events.loc[rows, "occurred_at"], utc=True)
    shop.events.loc[rows[::2], "occurred_at"] = (
        instants[::2].dt.tz_convert("Europe/Amsterdam").dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    )
    shop.events.loc[rows[1::2], "occurred_at"] = instants[1::2].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    shop.write()
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    snapshot = outcome.data_root / "runs" / outcome.run_id / "snapshot" / "events.parquet"
    by_id = pd.read_parquet(snapshot).set_index("event_id")["occurred_at"]
    ids = shop.events.loc[rows, "event_id"]
    assert list(by_id.loc[ids]) == list(instants)


def test_event_types_in_another_case_are_one_type(shop, good_version, tmp_path, capfd):
    """Every purchase spelled PURCHASE (and some ' Purchase '): still the transaction type."""
    purchases = shop.events["event_type"] == "purchase"
    shop.events.loc[purchases, "event_type"] = "PURCHASE"
    shop.events.loc[shop.events.index[purchases][:5], "event_type"] = " Purchase "
    shop.write()
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    assert "event types ignored" not in outcome.stdout
    test = pd.read_parquet(outcome.data_root / "runs" / outcome.run_id / "split" / "test.parquet")
    assert len(test) > 100  # the purchases are held out as transactions


def test_declared_day_first_dates_are_read_day_first(shop, good_version, tmp_path, capfd):
    instants = pd.to_datetime(shop.events["occurred_at"], utc=True)
    shop.events["occurred_at"] = instants.dt.strftime("%d/%m/%Y %H:%M:%S")
    shop.write()
    shop.edit_config(
        'transaction_types = ["purchase"]',
        'transaction_types = ["purchase"]\ntimestamp_format = "%d/%m/%Y %H:%M:%S"',
    )
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    snapshot = outcome.data_root / "runs" / outcome.run_id / "snapshot" / "events.parquet"
    by_id = pd.read_parquet(snapshot).set_index("event_id")["occurred_at"]
    assert (by_id.loc[shop.events["event_id"]].to_numpy() == instants.to_numpy()).all()


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


def config_edit(old: str, new: str) -> Callable[[Shop], None]:
    """A case: dataset.toml with its first `old` replaced by `new`."""
    return lambda shop: shop.edit_config(old, new)


def config_append(text: str) -> Callable[[Shop], None]:
    """A case: dataset.toml with `text` added at its end."""

    def case(shop: Shop):
        with shop.config.open("a") as config:
            config.write(text)

    return case


def config_top_level_key(shop: Shop):
    shop.config.write_text("top_n = 10\n" + shop.config.read_text())


def symlink_out_of_the_allowed_folders(shop: Shop):
    outside = Path("/var/tmp") / f"recs-outside-{os.getpid()}-{shop.folder.parent.name}.csv"
    shop.users.to_csv(outside, index=False)
    (shop.folder / "users.csv").unlink()
    (shop.folder / "users.csv").symlink_to(outside)


def broken_symlink(shop: Shop):
    (shop.folder / "products.csv").unlink()
    (shop.folder / "products.csv").symlink_to(shop.folder / "gone.csv")


def repeated_column_in_header(shop: Shop):
    text = (shop.folder / "products.csv").read_text().splitlines()
    text[0] = text[0].replace("price", "price,price", 1)
    rows = [line.replace(",", ",,", 1) if i else line for i, line in enumerate(text)]
    (shop.folder / "products.csv").write_text("\n".join(rows) + "\n")


def ambiguous_day_month_dates(shop: Shop):
    rows = shop.events.index[:3]
    shop.events.loc[rows, "occurred_at"] = ["13/05/2024 10:00", "05/06/2024 11:00", "06.05.2024"]
    shop.write()


def every_product_out_of_stock(shop: Shop):
    shop.products["in_stock"] = "0"
    shop.write()


def most_products_out_of_stock(shop: Shop):
    shop.products["in_stock"] = "0"
    shop.products.loc[shop.products.index[:8], "in_stock"] = "1"
    shop.write()


def one_user_one_product(shop: Shop):
    shop.events["user_id"] = shop.events["user_id"].iloc[0]
    shop.events["product_id"] = shop.events["product_id"].iloc[0]
    shop.write()


def no_transactions(shop: Shop):
    shop.events = shop.events[shop.events["event_type"] != "purchase"]
    shop.write()


def products_header_only(shop: Shop):
    shop.products.iloc[:0].to_csv(shop.folder / "products.csv", index=False)


CONFIG = 4
SOURCE = 5
DATA = 6
REFUSED = 9

FAILING_CASES: dict[str, tuple[Callable[[Shop], None], int, str]] = {
    "prices_in_cents": (
        prices_in_cents,
        DATA,
        r"products\.csv: column 'price' failed expect_column_mean_to_be_between: observed \d+",
    ),
    "empty_file": (empty_file, SOURCE, r"events\.csv: EmptyDataError"),
    "header_only": (
        header_only,
        DATA,
        r"events\.csv: table failed expect_table_row_count_to_be_between: observed 0",
    ),
    "missing_required_column": (
        missing_required_column,
        SOURCE,
        r"events from .*events\.csv lacks required column\(s\) \['event_type'\]",
    ),
    "non_utf8_bytes": (
        non_utf8_bytes,
        SOURCE,
        r"users\.csv: UnicodeDecodeError: line 2 has byte 0xce, which is not UTF-8",
    ),
    "broken_quoting": (broken_quoting, SOURCE, r"events\.csv: ParserError"),
    "truncated_parquet": (
        truncated_parquet,
        SOURCE,
        r"products\.parquet: ArrowInvalid: .*magic bytes",
    ),
    "parquet_with_another_schema": (
        parquet_with_another_schema,
        SOURCE,
        r"events\.parquet lacks required column\(s\) \['user_id', 'product_id'\]",
    ),
    "all_null_feature_column": (
        all_null_feature_column,
        DATA,
        r"users\.csv: column 'skin_type' failed expect_column_values_to_not_be_null",
    ),
    "ten_times_fewer_rows": (
        ten_times_fewer_rows,
        DATA,
        r"events\.csv: table failed expect_table_row_count_to_be_between: observed 1,?\d{3}\b",
    ),
    "mostly_bad_rows": (
        mostly_bad_rows,
        DATA,
        r"events\.csv: [\d,]+ of [\d,]+ rows \([\d.]+%\) quarantined, above max_quarantine_share"
        r" 5\.0%: .*column 'quantity' expect_column_values_to_be_between",
    ),
    "config_section_typo": (
        config_edit("[publishing]", "[publising]"),
        CONFIG,
        r"dataset\.toml: 1 problem.*\[publising\]: unknown section \(did you mean 'publishing'\?\)",
    ),
    "config_key_typo_in_a_feature": (
        config_edit(
            'category = { kind = "categorical", case', 'category = { kind = "categorical", cases'
        ),
        CONFIG,
        r"dataset\.toml: .*\[product_features\.category\] cases: unknown key "
        r"\(did you mean 'case'\?\)",
    ),
    "config_not_toml": (
        config_edit("[events]", "[events"),
        CONFIG,
        r"dataset\.toml: not valid TOML: .*\(at line \d+, column \d+\)",
    ),
    "config_weight_not_a_number": (
        config_edit("purchase = 1.0", 'purchase = "heavy"'),
        CONFIG,
        r"dataset\.toml: .*\[events\.weights\] purchase = 'heavy': Input should be a valid number",
    ),
    "config_unknown_kind": (
        config_edit('region = "categorical"', 'region = { kind = "ordinal" }'),
        CONFIG,
        r"\[user_features\.region\] kind = 'ordinal': not a kind; kinds: categorical, multi",
    ),
    "config_negative_weight": (
        config_edit("view = 0.1", "view = -0.1"),
        CONFIG,
        r"\[events\] weights.*event weights must be >= 0, got \{'view': -0\.1\}",
    ),
    "config_store_start_not_a_date": (
        config_edit("store_start = 2022-01-01T00:00:00Z", 'store_start = "last spring"'),
        CONFIG,
        r"\[validation\] store_start = 'last spring': Input should be a valid datetime",
    ),
    "config_unknown_source_table": (
        config_append('\n[sources.user]\nkind = "files"\npath = "users.csv"\n'),
        CONFIG,
        r"\[sources\] user: unknown name \(did you mean 'users'\?\)",
    ),
    "config_top_level_key": (
        config_top_level_key,
        CONFIG,
        r"\[top_n\]: unknown section",
    ),
    "config_feature_column_missing": (
        config_edit('region = "categorical"', 'region = "categorical"\nskin_tone = "categorical"'),
        CONFIG,
        r"dataset\.toml declares column\(s\) of users that .*users\.csv does not have.*"
        r"\[user_features\] skin_tone: column 'skin_tone' is not in users "
        r"\(did you mean 'skin_type'\?\)",
    ),
    "config_rule_column_missing": (
        config_edit('brand_column = "brand"', 'brand_column = "maker"'),
        CONFIG,
        r"\[publishing\] brand_column: column 'maker' is not in products",
    ),
    "config_mean_of_a_missing_column": (
        config_edit("column_means = { price = ", "column_means = { prices = "),
        CONFIG,
        r"\[validation\] column_means names 'prices', which no table has "
        r"\(did you mean 'price'\?\)",
    ),
    "config_path_escapes": (
        config_append(
            '\n[sources.users]\nkind = "files"\npath = "../../../../../../etc/hostname"\n'
        ),
        CONFIG,
        r"the users file='.*etc/hostname' resolves to /etc/hostname, outside the allowed folders",
    ),
    "sqlite_database_outside": (
        config_append('\n[sources.events]\nkind = "sql"\nurl = "sqlite:////var/tmp/shop.db"\n'),
        CONFIG,
        r"the events database='/var/tmp/shop\.db' resolves to /var/tmp/shop\.db, outside the",
    ),
    "symlink_out_of_the_allowed_folders": (
        symlink_out_of_the_allowed_folders,
        CONFIG,
        r"the users file='.*users\.csv' resolves to /var/tmp/recs-outside-.*, outside the allowed",
    ),
    "broken_symlink": (
        broken_symlink,
        SOURCE,
        r"products\.csv is a symlink to .*gone\.csv, which does not exist",
    ),
    "repeated_column_in_header": (
        repeated_column_in_header,
        SOURCE,
        r"products\.csv: column\(s\) \['price'\] appear more than once in the header",
    ),
    "ambiguous_day_month_dates": (
        ambiguous_day_month_dates,
        DATA,
        r"events\.csv: column 'occurred_at' has 3 date\(s\) written with digits only.*"
        r"13/05/2024 10:00.*\[events\] timestamp_format",
    ),
    "every_product_out_of_stock": (
        every_product_out_of_stock,
        REFUSED,
        r"was not published: the publication is empty: 0 rows.*`latest` still serves",
    ),
    "most_products_out_of_stock": (
        most_products_out_of_stock,
        REFUSED,
        r"was not published: rows: [\d,]+, \d+% of the [\d,]+ that `latest`.*"
        r"products shown \(catalogue coverage\): [1-8], \d+% of the \d+ "
        r"that `latest` \(\d{8}T\d{6}Z-[0-9a-f]{10}\) serves, below min_share_of_latest 50%.*"
        r"--publishing\.min_share_of_latest 0",
    ),
    "one_user_one_product": (
        one_user_one_product,
        DATA,
        r"cannot train a recommender: only 1 user has events.*only 1 product has events",
    ),
    "no_transactions": (
        no_transactions,
        DATA,
        r"no user has a transaction \(purchase\) that can be held out.*transaction_types",
    ),
    "products_header_only": (
        products_header_only,
        DATA,
        r"[\d,]+ of [\d,]+ events \(100\.0%\) do not join: [\d,]+ with "
        r"product_id not in products; the limit is max_unjoined_share",
    ),
}


@pytest.mark.parametrize("case", list(FAILING_CASES))
def test_broken_input_stops_the_run_and_keeps_latest(case, shop, good_version, tmp_path, capfd):
    mutate, code, message = FAILING_CASES[case]
    mutate(shop)
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == code, (case, outcome.code, outcome.message[-3000:])
    assert re.search(message, outcome.message, re.DOTALL), outcome.message[-3000:]


def test_a_shrunken_publication_goes_out_when_the_check_is_lowered(
    shop, good_version, tmp_path, capfd
):
    """The refusal says how to accept a real change: with the check off, the run publishes."""
    most_products_out_of_stock(shop)
    outcome = run_case(shop, good_version, tmp_path, capfd, "--publishing.min_share_of_latest", "0")
    assert outcome.code == 0, outcome.message
    shown = pd.read_parquet(outcome.data_root / "published" / "latest" / "recommendations.parquet")
    assert shown["product_id"].nunique() <= 8
    assert outcome.manifest()["products_shown"] == shown["product_id"].nunique()
