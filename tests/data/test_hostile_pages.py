"""Hostile shop data in the pages a run writes, and table-level checks on the clean rows.

Shop text never runs as code: a category, a region or a column name that is markup is shown
as text in the Great Expectations Data Docs and in the project's own pages, opened in
headless Chromium and asked through the DOM. And row-level expectations quarantine rows
before the table-level ones (column means, null shares, row counts) look at the table: one
`inf` price is quarantined, not a reason to refuse the run.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.validation.validate import gx_context, run_suite

from tests.data import test_bad_inputs as corpus
from tests.chromium import browser
from tests.data.test_bad_inputs import quarantined_ids, run_case

# The corpus' fixtures: a shop folder of CSVs, and a good published version to start from.
shop = corpus.shop
good_version = corpus.good_version


def payload(name: str) -> str:
    """Markup that changes the page if it is parsed (an element with a known id) or run (the
    title): shown as text, it does neither. Its end is not TeX for the plots' labels."""
    return (
        f"<img src=x onerror=\"document.title='pwned by {name}'\"><b id=planted-{name}> $\\foo{{$"
    )


INSPECT = """({
    title: document.title,
    planted: [...document.querySelectorAll('[id^="planted-"]')].map(e => e.id),
    images: document.querySelectorAll('img[src="x"]').length,
    text: document.body.innerText,
})"""


def inspect(tools, page: Path) -> dict:
    tools.open(page)
    return tools.evaluate(INSPECT)


def assert_inert(state: dict, page: Path, shown: list[str]) -> None:
    """Nothing of the payloads ran or became an element; `shown` are visible as text."""
    assert "pwned" not in state["title"], (page, state["title"])
    assert state["planted"] == [] and state["images"] == 0, (page, state)
    for text in shown:
        assert text in state["text"], (page, text)


# ---- the Data Docs and the reports of a real nightly -----------------------------------


def test_hostile_category_and_region_are_text_in_every_page(shop, good_version, tmp_path, capfd):
    category, region, name = payload("category"), payload("region"), payload("name")
    product = shop.quiet_product()
    shop.products.loc[shop.products["product_id"] == product, "category"] = category
    # region has no list of allowed values: it flows on, into the data report's segments
    shop.users["region"] = np.where(np.arange(len(shop.users)) % 2, region, shop.users["region"])
    shop.edit_config('segment_columns = ["skin_type", "region"]', 'segment_columns = ["region"]')
    shop.products["name"] = name + " " + shop.products["name"]  # in both reports' tables
    shop.write()
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    assert quarantined_ids(outcome, "products") == {product}  # an unknown category

    run = outcome.data_root / "runs" / str(outcome.run_id)
    docs = run / "data_docs"
    index = (docs / "index.html").read_text()
    pages = sorted(docs.glob("validations/**/*.html")) + sorted(docs.glob("expectations/*.html"))
    assert len(pages) >= 6
    with browser() as tools:
        assert_inert(inspect(tools, docs / "index.html"), docs / "index.html", [])
        for page in pages:
            assert str(page.relative_to(docs)) in index  # the index links it
            shown = [category] if page.parent.parent.parent.name == "products" else []
            assert_inert(inspect(tools, page), page, shown)
        for page, shown in (
            (run / "reports" / "data_report.html", [region, name]),
            (run / "reports" / "evaluation_report.html", [name]),
            (outcome.data_root / "index.html", []),
        ):
            assert_inert(inspect(tools, page), page, shown)


# ---- a hostile column name (a CSV header) in the Data Docs ------------------------------


def test_hostile_column_name_and_values_are_text_in_the_data_docs(tmp_path):
    """What Great Expectations writes as it is, column names (section headers, the table of
    contents), unexpected values, observed values, and what it escapes itself (a value set),
    all shown as text."""
    column, value = payload("column"), payload("value")
    frame = pd.DataFrame({column: ["a", value, "b", "a"]})
    suite = {
        "name": "products",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": column, "value_set": ["a", "b", payload("set")]},
                "meta": {"on_failure": "quarantine"},
            },
            {
                "type": "expect_column_most_common_value_to_be_in_set",
                "kwargs": {"column": column, "value_set": ["b"]},
                "severity": "warning",
            },
            {
                "type": "expect_column_distinct_values_to_equal_set",
                "kwargs": {"column": column, "value_set": ["b"]},
                "severity": "warning",
            },
        ],
    }
    context = gx_context(tmp_path / "docs")
    outcomes, clean, quarantined = run_suite(context, "products", "products.csv", frame, suite)
    assert list(quarantined[column]) == [value] and len(clean) == 3
    assert [o.success for o in outcomes] == [False, False, False]
    context.build_data_docs(site_names=["run"])
    docs = tmp_path / "docs"
    pages = {page.relative_to(docs).parts[:2]: page for page in docs.glob("*/**/*.html")}
    assert set(pages) == {  # two suites (row-level, table-level), two validation results
        ("expectations", "products.html"),
        ("expectations", "products_clean_rows.html"),
        ("validations", "products"),
        ("validations", "products_clean_rows"),
    }
    shown = {  # besides the column name
        ("expectations", "products.html"): [payload("set")],
        ("validations", "products"): [payload("set"), value],  # value: the unexpected one
    }
    with browser() as tools:
        for key, page in pages.items():
            assert_inert(inspect(tools, page), page, [column, *shown.get(key, [])])


# ---- table-level checks run on the clean rows ------------------------------------------


# "NaN" is set aside by extraction (not a readable number), the others by the price range.
@pytest.mark.parametrize("price", ["inf", "1e309", "-inf", "NaN"])
def test_a_price_that_is_no_number_is_quarantined_and_the_mean_checked_without_it(
    price, shop, good_version, tmp_path, capfd
):
    product = shop.quiet_product()
    shop.products.loc[shop.products["product_id"] == product, "price"] = price
    shop.write()
    outcome = run_case(shop, good_version, tmp_path, capfd)
    assert outcome.code == 0, outcome.message
    assert quarantined_ids(outcome, "products") == {product}
    events = shop.events.loc[shop.events["product_id"] == product, "event_id"]
    assert quarantined_ids(outcome, "events") == set(events)
    run = outcome.data_root / "runs" / str(outcome.run_id)
    accounting = json.loads((run / "row_accounting.json").read_text())
    assert accounting["products"]["read"] == len(shop.products)
    assert accounting["products"]["quarantined"] == 1
    # the column mean was checked (and passed: the run published) on the clean rows only
    docs = run / "data_docs"
    suite = (docs / "expectations" / "products_clean_rows.html").read_text()
    assert f"on the {len(shop.products) - 1:,} rows left" in suite
    assert "mean must be" in suite
    clean = pd.read_parquet(run / "clean" / "products.parquet")
    low, high = tomllib.loads(shop.config.read_text())["validation"]["column_means"]["price"]
    assert np.isfinite(clean["price"].astype(float)).all()
    assert low <= clean["price"].astype(float).mean() <= high
