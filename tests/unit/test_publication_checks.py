"""The last check before `latest` moves (tasks/publishing/publication_checks.py), on its own."""

from __future__ import annotations

import pytest

from tasks.publishing.publication_checks import PublicationFigures, refusals

SERVING = PublicationFigures(rows=10_000, users_with_list=1_000, products_shown=200)


def figures(rows: int, users: int, products: int) -> PublicationFigures:
    return PublicationFigures(rows=rows, users_with_list=users, products_shown=products)


def test_an_empty_publication_is_refused_even_with_the_check_off():
    assert refusals(figures(0, 0, 0), None, 0.0) == [
        "the publication is empty: 0 rows (no product could be recommended to anyone)"
    ]
    assert refusals(figures(0, 0, 0), SERVING, 0.0)


@pytest.mark.parametrize(
    ("candidate", "refused"),
    [
        (figures(10_000, 1_000, 200), []),
        (figures(5_000, 500, 100), []),  # exactly half: allowed
        (figures(4_999, 1_000, 200), ["rows"]),
        (figures(10_000, 499, 200), ["users with a list"]),
        (figures(10_000, 1_000, 99), ["products shown"]),
        (figures(100, 10, 2), ["rows", "users with a list", "products shown"]),
        (figures(50_000, 9_000, 900), []),  # growth is never refused
    ],
)
def test_each_figure_is_compared_with_what_latest_serves(candidate, refused):
    reasons = refusals(candidate, SERVING, 0.5, "20261101T000000Z-0123456789")
    assert [r.split(":")[0].split(" (")[0] for r in reasons] == refused
    for reason in reasons:
        assert "20261101T000000Z-0123456789" in reason and "min_share_of_latest 50%" in reason


def test_no_comparison_without_a_serving_version_or_with_the_check_off():
    small = figures(1, 1, 1)
    assert refusals(small, None, 0.5) == []
    assert refusals(small, SERVING, 0.0) == []


def test_a_manifest_from_before_the_check_is_not_compared():
    assert PublicationFigures.of_manifest({"row_count": 5}) is None
    manifest = {"row_count": 5, "users_with_list": 2, "products_shown": 3}
    assert PublicationFigures.of_manifest(manifest) == figures(5, 2, 3)
