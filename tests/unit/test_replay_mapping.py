"""The shipped hotel booking dataset maps to the documented outcome events."""
from __future__ import annotations

import gzip
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from click.testing import CliRunner

from batch.cli import cli
from producers.replay_mapping import DEFAULT_DATASET, load_bookings, load_outcomes, outcomes_from_bookings, plan_resends
from schemas.errors import ConfigError

N_BOOKINGS = 119_390
LEAKY = {"reservation_status", "reservation_status_date", "is_canceled", "adr"}


@pytest.fixture(scope="module")
def bookings() -> pd.DataFrame:
    return load_bookings(DEFAULT_DATASET)


@pytest.fixture(scope="module")
def outcomes(bookings) -> list[dict]:
    started = time.perf_counter()
    result = outcomes_from_bookings(bookings)
    assert time.perf_counter() - started < 5.0
    return result


@pytest.fixture(scope="module")
def by_id(outcomes) -> dict[str, dict]:
    return {o["event_id"]: o for o in outcomes}


def test_every_booking_is_one_outcome_with_a_distinct_id(outcomes, by_id):
    assert len(outcomes) == N_BOOKINGS
    assert len(by_id) == N_BOOKINGS
    assert Counter(o["property_id"] for o in outcomes) == {"city": 79_330, "resort": 40_060}


def test_acceptance_share_matches_the_csv_per_hotel(outcomes):
    raw = pd.read_csv(DEFAULT_DATASET, usecols=["hotel", "is_canceled"])
    expected = (1 - raw.groupby("hotel")["is_canceled"].mean()).rename({"City Hotel": "city",
                                                                       "Resort Hotel": "resort"})
    mapped = pd.DataFrame({"p": [o["property_id"] for o in outcomes],
                           "a": [o["accepted"] for o in outcomes]}).groupby("p")["a"].mean()
    for prop in ("city", "resort"):
        assert mapped[prop] == pytest.approx(expected[prop], abs=1e-12)


def test_sorted_by_timestamp_then_row(outcomes):
    keys = [(o["timestamp"], int(o["event_id"].split(":")[1])) for o in outcomes]
    assert keys == sorted(keys)
    assert all(o["timestamp"].tzinfo is timezone.utc for o in outcomes[:100])


def test_outcome_columns_never_leak_into_features(outcomes):
    for o in outcomes:
        assert not LEAKY & o["features"].keys()
        assert "hotel" not in o["features"] and "lead_time" not in o["features"]


def test_negative_adr_is_clamped_and_kept_raw(by_id):
    row = by_id["hotel-bookings:14969"]
    assert row["quoted_price"] == 0.0
    assert row["features"]["adr_raw"] == -6.38
    assert sum("adr_raw" in o["features"] for o in by_id.values()) == 1


def test_hand_picked_rows(by_id):
    first = by_id["hotel-bookings:0"]  # Resort, arrives Wed 2015-07-01, lead 342, not cancelled, adr 0
    assert first["property_id"] == "resort"
    assert first["timestamp"] == datetime(2014, 7, 24, tzinfo=timezone.utc)
    assert first["context"] == {"season": "Summer", "day_of_week": 2, "temperature": None,
                                "is_holiday": None, "occupancy_rate": None, "lead_time": 342,
                                "length_of_stay": 0, "is_refundable": 0}
    assert first["accepted"] is True and first["final_price"] == 0.0
    assert first["features"]["agent"] is None and first["features"]["country"] == "PRT"
    assert first["features"]["adults"] == 2.0
    clamped = by_id["hotel-bookings:14969"]  # arrives Sun 2017-03-05, lead 195, 4+6 nights, agent 273
    assert clamped["timestamp"] == datetime(2016, 8, 22, tzinfo=timezone.utc)
    assert clamped["context"]["season"] == "Spring" and clamped["context"]["day_of_week"] == 6
    assert clamped["context"]["length_of_stay"] == 10
    assert clamped["features"]["agent"] == "273"


def test_types_of_the_record(outcomes, bookings):
    cancelled = next(o for o in outcomes if not o["accepted"])
    assert cancelled["final_price"] is None and cancelled["time_to_book"] is None
    for o in outcomes[:2000]:
        for key, value in o["features"].items():
            assert value is None or isinstance(value, (float, str)), (key, value)
    assert sum(o["context"]["is_refundable"] for o in outcomes) == (bookings["deposit_type"] == "Refundable").sum()
    assert sum(o["features"]["children"] is None for o in outcomes) == 4


def test_limit_keeps_the_earliest(outcomes, bookings):
    assert outcomes_from_bookings(bookings, limit=50) == outcomes[:50]


def test_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.csv"):
        load_bookings(tmp_path / "nope.csv")


def _small(n: int = 2000) -> list[dict]:
    start = datetime(2016, 1, 1, tzinfo=timezone.utc)
    return [{"event_id": f"e{i}", "timestamp": start + timedelta(minutes=i)} for i in range(n)]


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.5, 1.0])
def test_plan_resends_counts_and_gaps(fraction):
    originals = _small()
    order = plan_resends(originals, fraction, seed=3, max_gap=20)
    assert len(order) == len(originals) + round(fraction * len(originals))
    first_seen: dict[str, int] = {}
    for position, outcome in enumerate(order):
        if outcome["event_id"] in first_seen:
            assert 1 <= position - first_seen[outcome["event_id"]] <= 20
        else:
            first_seen[outcome["event_id"]] = position
    assert len(first_seen) == len(originals)
    assert Counter(o["event_id"] for o in order).most_common(1)[0][1] <= 2


def test_plan_resends_keeps_original_order_and_is_deterministic(outcomes):
    sample = outcomes[:5000]
    order = plan_resends(sample, 0.1, seed=7)
    again = plan_resends(sample, 0.1, seed=7)
    assert [o["event_id"] for o in order] == [o["event_id"] for o in again]
    assert [o["event_id"] for o in order] != [o["event_id"] for o in plan_resends(sample, 0.1, seed=8)]
    seen, firsts = set(), []
    for o in order:
        if o["event_id"] not in seen:
            seen.add(o["event_id"])
            firsts.append(o)
    assert firsts == sample
    assert len(order) == 5500
    originals = {id(o) for o in sample}
    assert all(id(o) in originals for o in order)  # a re-send is the very same record


@pytest.mark.parametrize("fraction", [0.05, 1.0])
def test_plan_resends_stays_within_the_event_time_horizon(outcomes, fraction):
    """Sparse 2013-2014 bookings: 200 positions can span months, yet no re-send may come after
    an outcome more than max_lag newer than itself (the worker would have forgotten its id)."""
    order = plan_resends(outcomes, fraction, max_lag=timedelta(days=7))
    first_seen: dict[str, int] = {}
    newest = order[0]["timestamp"]
    for position, outcome in enumerate(order):
        newest = max(newest, outcome["timestamp"])
        if outcome["event_id"] in first_seen:
            assert newest - outcome["timestamp"] <= timedelta(days=7), outcome["event_id"]
            assert 1 <= position - first_seen[outcome["event_id"]] <= 200
        else:
            first_seen[outcome["event_id"]] = position
    assert len(order) == len(outcomes) + round(fraction * len(outcomes))


def test_plan_resends_on_sparse_events_resends_before_the_next_one():
    start = datetime(2014, 1, 1, tzinfo=timezone.utc)
    sparse = [{"event_id": f"s{i}", "timestamp": start + timedelta(days=10 * i)} for i in range(100)]
    order = plan_resends(sparse, 0.5, seed=1)
    assert len(order) == 150
    for previous, current in zip(order, order[1:]):
        if current is not previous and current["timestamp"] < previous["timestamp"]:
            pytest.fail(f"{current['event_id']} re-sent after a newer outcome {previous['event_id']}")
    assert sum(a is b for a, b in zip(order, order[1:])) == 50  # each re-send right after its original


def test_plan_resends_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="fraction"):
        plan_resends(_small(10), 1.5)
    with pytest.raises(ConfigError, match="max_gap"):
        plan_resends(_small(10), 0.1, max_gap=0)


_HEADER = ("hotel,is_canceled,lead_time,arrival_date_year,arrival_date_month,arrival_date_day_of_month,"
           "stays_in_weekend_nights,stays_in_week_nights,deposit_type,adr\n")


@pytest.mark.parametrize("name, content, reason", [
    ("not-gzip.csv.gz", b"hello\n", "Not a gzipped file"),
    ("truncated.csv.gz", gzip.compress(_HEADER.encode() * 50)[:40], "Compressed file ended"),
    ("binary.csv", b"\xff\xfe\x00bad\n", "can't decode byte 0xff"),
    ("empty.csv", b"", "No columns to parse from file"),
    ("quote.csv", (_HEADER + 'a,"b\n').encode(), "EOF inside string"),
    ("bad-day.csv", (_HEADER + "City Hotel,0,3,2015,July,40,1,1,No Deposit,90\n").encode(),
     'invalid or out-of-bounds date "2015-07-40"'),
    ("bad-month.csv", (_HEADER + "City Hotel,0,3,2015,Julember,4,1,1,No Deposit,90\n").encode(),
     "unknown arrival_date_month values ['Julember']"),
])
def test_a_malformed_dataset_is_one_line_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_outcomes(path)
    assert str(path) in str(caught.value) and reason in str(caught.value) and "\n" not in str(caught.value)
    result = CliRunner().invoke(cli, ["replay", str(path), "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and str(path) in result.output
    assert result.output.count("\n") == 1 and isinstance(result.exception, SystemExit)   # no traceback


def test_load_outcomes_reads_the_shipped_dataset_like_the_two_steps(outcomes):
    assert load_outcomes(DEFAULT_DATASET, limit=20) == outcomes[:20]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused_not_sliced(bookings, limit):
    with pytest.raises(ConfigError, match=f"limit must be at least 1 \\(None: all bookings\\), got {limit}"):
        outcomes_from_bookings(bookings, limit=limit)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), float("inf")])
def test_replay_dataset_refuses_a_rate_that_is_not_a_finite_number_above_zero(rate):
    from producers.replay import replay_dataset
    from schemas.settings import Settings

    with pytest.raises(ConfigError, match="rate must be a finite number of events per second > 0"):
        replay_dataset(Settings.from_env({}, bootstrap_servers="127.0.0.1:1"), limit=5, rate=rate)
