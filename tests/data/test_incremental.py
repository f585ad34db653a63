"""Incremental extraction: new and late events are appended once; a rerun changes nothing;
the result equals a full extraction of the same data."""

from __future__ import annotations

import json

import pandas as pd

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.ingest.central import load_central_state

from tests.conftest import REPO, raw_store_tables
from tests.data.test_sources import deterministic

DETERMINISTIC = deterministic(seed=5, top_n=5, no_components=8, epochs=4)


def run(shop, data_root, extraction):
    return nightly(
        NightlyParams(source=str(shop), data_root=data_root, extraction=extraction, **DETERMINISTIC)
    )


def fingerprint(data_root, summary) -> str:
    metrics = json.loads((data_root / "runs" / summary.run_id / "metrics.json").read_text())
    return metrics["data"]["fingerprint"]


def test_incremental_appends_new_and_late_events_once(tmp_path, tiny_store_db):
    tables = raw_store_tables(tiny_store_db)
    shop = tmp_path / "shop"
    shop.mkdir()
    tables["users"].to_csv(shop / "users.csv", index=False)
    tables["products"].to_csv(shop / "products.csv", index=False)
    tables["events"].to_csv(shop / "events.csv", index=False)
    (shop / "dataset.toml").write_text((REPO / "dataset.toml").read_text())
    data_root = tmp_path / "data"
    n_events = len(tables["events"])

    first = run(shop, data_root, "incremental")
    assert first.counts["events"] == first.new_events == n_events
    state = load_central_state(data_root)
    assert state.events == n_events and len(state.parts) == 1
    part = data_root / "central" / "events" / state.parts[0]
    part_bytes = part.read_bytes()

    # Same data again: nothing new, nothing changes.
    second = run(shop, data_root, "incremental")
    assert second.new_events == 0 and second.already_ingested > 0
    assert load_central_state(data_root).parts == state.parts
    assert part.read_bytes() == part_bytes
    assert fingerprint(data_root, second) == fingerprint(data_root, first)
    pd.testing.assert_frame_equal(
        pd.read_parquet(first.published_path)[["user_id", "rank", "product_id", "score"]],
        pd.read_parquet(second.published_path)[["user_id", "rank", "product_id", "score"]],
    )

    # New events after the high-water mark, one late event inside the window, one repeat.
    events = tables["events"]
    hwm = pd.Timestamp(state.high_water_mark)
    template = events.iloc[-1]
    fresh = pd.DataFrame(
        [
            template.to_dict()
            | {
                "event_id": 10_000_000 + i,
                "occurred_at": (hwm + pd.Timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S"),
                "event_type": "view",
            }
            for i, hours in enumerate([1, 2, 3, 4, 5, -10])  # -10 h: late but in the window
        ]
    )
    repeat = fresh.iloc[[0]]
    pd.concat([events, fresh, repeat]).to_csv(shop / "events.csv", index=False)

    third = run(shop, data_root, "incremental")
    assert third.new_events == 6
    assert third.quarantined["events"] == 1  # the repeated row, kept aside with a reason
    assert third.counts["events"] == n_events + 6
    quarantine = pd.read_parquet(
        data_root / "runs" / third.run_id / "quarantine" / "events.parquet"
    )
    assert list(quarantine["event_id"]) == ["10000000"]
    assert set(quarantine["quarantine_reason"]) == {"duplicate of another event in this extract"}
    after = load_central_state(data_root)
    assert len(after.parts) == 2 and after.events == n_events + 6
    assert pd.Timestamp(after.high_water_mark) == hwm + pd.Timedelta(hours=5)

    # A full extraction of the same files gives the same dataset.
    full = run(shop, data_root, "full")
    assert fingerprint(data_root, full) == fingerprint(data_root, third)
    assert len(load_central_state(data_root).parts) == 1
    assert len(list((data_root / "central" / "events").glob("part-*.parquet"))) == 1


def test_failed_validation_does_not_move_the_high_water_mark(tmp_path, tiny_store_db):
    tables = raw_store_tables(tiny_store_db)
    shop = tmp_path / "shop"
    shop.mkdir()
    for name, frame in tables.items():
        frame.to_csv(shop / f"{name}.csv", index=False)
    (shop / "dataset.toml").write_text((REPO / "dataset.toml").read_text())
    data_root = tmp_path / "data"
    run(shop, data_root, "incremental")
    before = (data_root / "central" / "state.json").read_text()

    # 5% new events with unparseable times: more than validation may quarantine (1%).
    garbage = tables["events"].tail(len(tables["events"]) // 20)
    garbage = garbage.assign(event_id=garbage["event_id"] + 10_000_000, occurred_at="garbage")
    pd.concat([tables["events"], garbage]).to_csv(shop / "events.csv", index=False)
    try:
        run(shop, data_root, "incremental")
    except Exception as error:  # noqa: BLE001 (the failure itself is tested elsewhere)
        assert "occurred_at" in str(error)
    else:
        raise AssertionError("an unparseable timestamp must fail the run")
    assert (data_root / "central" / "state.json").read_text() == before


def test_a_poisoned_night_does_not_move_the_clock_and_the_next_night_ingests_all(
    tmp_path, tiny_store_db
):
    """Night 1 holds an event dated 2999: it is quarantined, and neither the version id,
    the manifest's data_until, nor the central dataset's high-water mark see it (nor does
    the central dataset keep it). Night 2 (incremental) brings 300 new events after the
    real high-water mark: every one is ingested and the publication's data_until moves to
    the newest of them."""
    tables = raw_store_tables(tiny_store_db)
    shop = tmp_path / "shop"
    shop.mkdir()
    events = tables["events"].copy()
    clean_newest = pd.to_datetime(events["occurred_at"], utc=True).max()
    poisoned = events.iloc[[-1]].assign(event_id="POISON-2999", occurred_at="2999-01-01 00:00:00")
    tables["users"].to_csv(shop / "users.csv", index=False)
    tables["products"].to_csv(shop / "products.csv", index=False)
    pd.concat([events, poisoned]).to_csv(shop / "events.csv", index=False)
    (shop / "dataset.toml").write_text((REPO / "dataset.toml").read_text())
    data_root = tmp_path / "data"

    first = run(shop, data_root, "incremental")
    quarantine = pd.read_parquet(
        data_root / "runs" / first.run_id / "quarantine" / "events.parquet"
    )
    assert set(quarantine["event_id"]) == {"POISON-2999"}
    manifest = json.loads((first.published_path.parent / "manifest.json").read_text())
    assert pd.Timestamp(manifest["data_until"]) == clean_newest
    assert first.published_version.startswith(f"{clean_newest:%Y%m%dT%H%M%SZ}-")
    state = load_central_state(data_root)
    assert pd.Timestamp(state.high_water_mark) == clean_newest
    assert state.events == len(events)
    central = pd.concat(
        pd.read_parquet(data_root / "central" / "events" / part) for part in state.parts
    )
    assert "POISON-2999" not in set(central["event_id"]) and len(central) == len(events)

    # Night 2: 300 new events, a minute apart, from a minute after the real newest event.
    template = events.sample(300, random_state=3).reset_index(drop=True)
    new = template.assign(
        event_id=[f"NEW-{i:03d}" for i in range(300)],
        occurred_at=[
            (clean_newest + pd.Timedelta(minutes=1 + i)).strftime("%Y-%m-%d %H:%M:%S")
            for i in range(300)
        ],
    )
    pd.concat([events, poisoned, new]).to_csv(shop / "events.csv", index=False)
    second = run(shop, data_root, "incremental")
    assert second.new_events == 300
    state = load_central_state(data_root)
    assert state.events == len(events) + 300
    newest = pd.Timestamp(new["occurred_at"].iloc[-1], tz="UTC")
    assert pd.Timestamp(state.high_water_mark) == newest
    manifest = json.loads((second.published_path.parent / "manifest.json").read_text())
    assert pd.Timestamp(manifest["data_until"]) == newest
    assert second.published_version != first.published_version
