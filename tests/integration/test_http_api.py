"""The seed's HTTP API on a real worker and broker: /learn round trips, errors, stats, compaction
and retention while the worker runs, and every live response checked against openapi.json."""
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from batch.cli import cli
from consumers.process import WorkerProcess
from consumers.storage import OutcomesStorage
from producers.embedded_broker import EmbeddedBroker, free_port
from producers.publisher import OutcomePublisher
from producers.replay import replay_dataset
from producers.replay_mapping import load_bookings, outcomes_from_bookings
from schemas.settings import Settings

pytestmark = pytest.mark.integration
SPEC = json.loads((Path(__file__).parents[2] / "consumers" / "openapi.json").read_text())
TOKEN = "integration-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEED_BATCH = {"batch": [
    {"property_id": "property-uuid", "timestamp": "2024-10-23T14:30:00Z", "quoted_price": 205.50, "accepted": True,
     "final_price": 205.50, "time_to_book": 2.5, "comp_p10": 120.00, "comp_p50": 180.00, "comp_p90": 250.00,
     "context": {"season": "Fall", "day_of_week": 5, "temperature": 18.5, "is_holiday": 0, "occupancy_rate": 0.75,
                 "lead_time": 14, "length_of_stay": 2, "is_refundable": 0}},
    {"property_id": "property-uuid", "timestamp": "2024-10-23T15:00:00Z", "quoted_price": 195.00, "accepted": False},
]}


def outcome(prop, day="2016-03-01", price=100.0, accepted=True):
    return {"property_id": prop, "timestamp": f"{day}T10:00:00Z", "quoted_price": price, "accepted": accepted}


class Api:
    def __init__(self, settings: Settings, worker: WorkerProcess):
        self.settings, self.worker = settings, worker
        self.base = f"http://{settings.web_host}:{settings.web_port}"
        self.storage = OutcomesStorage(settings.data_dir)

    def call(self, method, path, body=None, headers=None, raw=None, spec_path=None):
        """(status, headers, JSON body), the body checked against the OpenAPI document."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, head, text = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, head, text = error.code, dict(error.headers), error.read()
        document = json.loads(text)
        conforms(spec_path or path.split("?")[0], method.lower(), status, document)
        return status, head, document

    def rows(self, prop):
        return self.storage.get_outcomes(prop)

    def wait_rows(self, prop, count, timeout=30):
        deadline = time.monotonic() + timeout
        while len(self.rows(prop)) < count:
            assert time.monotonic() < deadline, f"{prop}: {len(self.rows(prop))} rows, expected {count}"
            time.sleep(0.2)
        return self.rows(prop)

    def wait_settled(self, metric, value, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            m = self.worker.metrics()
            if m.get(metric, 0) >= value and m.get("bookloop_buffered_events", 0) == 0:
                return m
            assert time.monotonic() < deadline, f"{metric} stayed at {m.get(metric)} < {value}"
            time.sleep(0.2)


def conforms(path, method, status, document):
    response = SPEC["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": SPEC["components"]}).validate(document)


def worker_settings(bootstrap, data_dir, **overrides):
    def unique(prefix):
        return f"{prefix}-{uuid.uuid4().hex[:12]}"
    return Settings.from_env({}, **{
        "bootstrap_servers": bootstrap, "data_dir": str(data_dir), "outcomes_topic": unique("outcomes"),
        "dlq_topic": unique("dlq"), "model_topic": unique("models"), "drift_topic": unique("drift"),
        "group_id": unique("group"), "web_port": free_port(), "session_timeout_seconds": 6.0,
        "flush_interval_seconds": 1.0, "delivery_timeout_seconds": 15.0, **overrides})


def ready(settings, worker):
    """The worker's API once the worker serves it and holds its partitions."""
    worker.wait_ready()
    api = Api(settings, worker)
    deadline = time.monotonic() + 60
    while api.call("GET", "/healthz")[0] != 200:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.3)
    return api


@pytest.fixture(scope="module")
def api(broker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("http-api")
    settings = worker_settings(broker.bootstrap, folder / "store", api_token=TOKEN, api_max_body_bytes=20_000)
    worker = WorkerProcess(settings, folder / "worker.log").start()
    try:
        yield ready(settings, worker)
    finally:
        worker.stop()


def test_seed_example_lands_once_even_when_posted_twice(api):
    status, _, body = api.call("POST", "/learn", SEED_BATCH, AUTH)
    assert status == 200
    assert body == {"success": True, "processed": 2, "message": "Stored 2 outcomes across 1 properties"}
    rows = api.wait_rows("property-uuid", 2)
    assert sorted(rows.quoted_price) == [195.0, 205.5]
    assert all(rows.event_id.str.startswith("sha256:"))
    landed = api.worker.metrics()["bookloop_events_landed_total"]

    status, _, again = api.call("POST", "/learn", SEED_BATCH, AUTH)
    assert (status, again) == (200, body)
    api.wait_settled("bookloop_duplicates_total", 2)
    assert len(api.rows("property-uuid")) == 2
    assert api.worker.metrics()["bookloop_events_landed_total"] == landed

    status, _, stats = api.call("GET", "/learn/outcomes/property-uuid/stats?as_of=2024-10-24",
                                spec_path="/learn/outcomes/{property_id}/stats")
    assert status == 200 and stats["stats"]["total_records"] == 2
    assert stats["stats"]["recent_activity"] == {"last_7_days": 2, "acceptance_rate_7d": 0.5}


def test_one_invalid_item_rejects_the_whole_request(api):
    prop = "p-invalid"
    status, _, body = api.call("POST", "/learn", {"batch": [outcome(prop), outcome(prop, price=-1.0)]}, AUTH)
    assert status == 400 and body["error"] == "invalid_outcomes"
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, "quoted_price_negative")]
    # a later valid event of the same property (same partition, so after the rejected ones) lands alone
    assert api.call("POST", "/learn", {"batch": [outcome(prop, price=7.0)]}, AUTH)[0] == 200
    assert list(api.wait_rows(prop, 1).quoted_price) == [7.0]


def test_request_errors_are_json(api):
    assert api.call("POST", "/learn", SEED_BATCH)[0] == 401
    status, head, body = api.call("POST", "/learn", SEED_BATCH, {"Authorization": "Bearer wrong"})
    assert (status, body["error"], head["WWW-Authenticate"]) == (401, "unauthorized", "Bearer")
    assert api.call("POST", "/learn", raw=b"{not json", headers=AUTH)[2]["error"] == "malformed_json"
    assert api.call("POST", "/learn", {"outcomes": []}, AUTH)[2]["error"] == "batch_missing"
    big = {"batch": [outcome("p-big")] * 400}
    status, _, body = api.call("POST", "/learn", big, AUTH)
    assert (status, body["error"]) == (413, "body_too_large")
    assert api.call("GET", "/learn/outcomes/nowhere/stats", spec_path="/learn/outcomes/{property_id}/stats")[0] == 404
    assert api.call("GET", "/learn/outcomes/property-uuid/stats?as_of=yesterday",
                    spec_path="/learn/outcomes/{property_id}/stats")[0] == 400
    status, _, body = api.call("GET", "/learn/outcomes/property-uuid/stats?as_of=9999-12-31",
                               spec_path="/learn/outcomes/{property_id}/stats")
    assert (status, body["error"]) == (400, "as_of_out_of_range")
    assert api.call("GET", "/dashboard/overview?as_of=0001-01-01")[2]["error"] == "as_of_out_of_range"
    assert api.call("GET", "/learn/outcomes/" + "x" * 5000 + "/stats",
                    spec_path="/learn/outcomes/{property_id}/stats")[:3:2] == (
        404, {"success": False, "error": "unknown_property", "message": "no outcomes stored for property "
              + repr("x" * 5000)[:80]})
    deep = b'{"batch": ' + b"[" * 9000 + b"]" * 9000 + b"}"
    status, _, body = api.call("POST", "/learn", raw=deep, headers={"Authorization": f"bearer {TOKEN}"})
    assert (status, body["error"]) == (400, "malformed_json")   # and the scheme name is case-insensitive
    for method, path, expected in (("GET", "/nowhere", (404, "not_found")), ("PUT", "/learn", (405, "method_not_allowed"))):
        request = urllib.request.Request(api.base + path, data=b"{}" if method == "PUT" else None, method=method)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=30)
        assert (raised.value.code, json.loads(raised.value.read())["error"]) == expected


def test_http_and_library_publishers_use_the_same_partition(api):
    props = [f"p-part-{i}" for i in range(6)]
    with OutcomePublisher(api.settings) as publisher:
        for prop in props:
            publisher.publish({**outcome(prop), "timestamp": 1456826400000, "event_id": f"lib-{prop}"})
    assert api.call("POST", "/learn", {"batch": [outcome(p, price=2.0) for p in props]}, AUTH)[0] == 200
    for prop in props:
        assert api.wait_rows(prop, 2).source_partition.nunique() == 1, prop


def test_replay_stats_compaction_and_prune_while_the_worker_runs(api):
    records = outcomes_from_bookings(load_bookings(), limit=3000)
    city = [r for r in records if r["property_id"] == "city"]
    with OutcomePublisher(api.settings) as publisher:
        replay_dataset(api.settings, limit=3000, create_topics=False, publisher=publisher)
    api.wait_rows("resort", len(records) - len(city))
    landed = api.wait_rows("city", len(city))
    status, _, body = api.call("GET", "/learn/outcomes/city/stats", spec_path="/learn/outcomes/{property_id}/stats")
    assert body["stats"]["total_records"] == len(landed) == len(city)
    assert body["stats"]["acceptance_rate"] == round(sum(r["accepted"] for r in city) / len(city), 4)

    first = landed.timestamp.dt.date.min()
    old_days = [first + timedelta(days=i) for i in range(3)]
    for n in (1, 2):  # two more part files in each of three old date partitions
        batch = [outcome("city", day.isoformat(), price=float(n)) for day in old_days]
        assert api.call("POST", "/learn", {"batch": batch}, AUTH)[0] == 200
        api.wait_rows("city", len(city) + 3 * n)
    before = api.call("GET", "/learn/outcomes/city/stats", spec_path="/learn/outcomes/{property_id}/stats")[2]
    report = run_cli("compact", "--property-id", "city", "--min-age", "0", "--json", data_dir=api.settings.data_dir)
    assert json.loads(report)["partitions_compacted"] >= 3
    after = api.call("GET", "/learn/outcomes/city/stats", spec_path="/learn/outcomes/{property_id}/stats")[2]
    assert {**after["stats"], "file_size_mb": 0} == {**before["stats"], "file_size_mb": 0}

    cut = old_days[0] + timedelta(days=10)
    doomed = int((api.rows("city").timestamp.dt.date < cut).sum())
    out = run_cli("prune", "--before", cut.isoformat(), "--property-id", "city", data_dir=api.settings.data_dir)
    assert out.startswith(f"removed {doomed} outcomes")
    left = api.rows("city")
    assert len(left) == len(city) + 6 - doomed and left.timestamp.dt.date.min() >= cut


def test_listing_dashboards_and_openapi(api):
    assert api.call("POST", "/learn", {"batch": [outcome("p-list")]}, AUTH)[0] == 200
    api.wait_rows("p-list", 1)
    assert "p-list" in api.call("GET", "/learn/outcomes/properties")[2]["properties"]
    status, _, overview = api.call("GET", "/dashboard/overview?as_of=2016-03-01")
    line = next(p for p in overview["properties"] if p["property_id"] == "p-list")
    assert status == 200 and line == {"property_id": "p-list", "total_outcomes": 1, "recent_outcomes_7d": 1,
                                      "acceptance_rate": 1.0, "avg_price": 100.0}
    assert api.call("GET", "/dashboard/model-performance")[2]["summary"]["models_count"] == 0
    assert api.call("GET", "/openapi.json")[2] == SPEC
    for schema in SPEC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_broker_gone_means_503_with_retry_after(tmp_path):
    broker = EmbeddedBroker().start()
    settings = worker_settings(broker.bootstrap, tmp_path / "store", delivery_timeout_seconds=3.0)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        api = ready(settings, worker)
        broker.stop()
        status, head, body = api.call("POST", "/learn", {"batch": [outcome("p-gone")]})
        assert (status, body["error"], head["Retry-After"]) == (503, "broker_unavailable", "5")
        assert api.call("GET", "/healthz")[2]["broker_reachable"] is False
    finally:
        worker.stop(timeout=5)
        broker.stop()


def run_cli(*args, data_dir):
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return result.output
