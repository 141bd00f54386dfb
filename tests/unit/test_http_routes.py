"""The HTTP API's wiring without a broker: routes match openapi.json, errors become JSON."""
import asyncio
import json

import faust
import pytest

from consumers.http_api import OPENAPI_PATH, ApiError, _handler, register_http_api
from schemas.settings import Settings


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path):
    app = faust.App("routes-test", broker="kafka://127.0.0.1:1", web_port=6066, datadir=str(tmp_path))
    register_http_api(app, None, Settings.from_env({}))
    served = {(r.resource.canonical, r.method.lower()) for r in app.web.web_app.router.routes() if r.method != "HEAD"}
    spec = json.loads(OPENAPI_PATH.read_text())
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert served == documented - {("/metrics", "get")}  # /metrics is registered by consumers/app.py


def test_settings_keep_the_token_out_of_repr():
    settings = Settings.from_env({"BOOKLOOP_API_TOKEN": "s3cret"})
    assert settings.api_token == "s3cret" and "s3cret" not in repr(settings)


class FakeView:
    def json(self, value, status=200, headers=None):
        return status, value, headers


class FakeRequest:
    method, path = "GET", "/x"


@pytest.mark.parametrize("raised, expected", [
    (ApiError(404, "unknown_property", "no such property"),
     (404, {"success": False, "error": "unknown_property", "message": "no such property"}, None)),
    (ApiError(503, "broker_unavailable", "down", headers={"Retry-After": "5"}),
     (503, {"success": False, "error": "broker_unavailable", "message": "down"}, {"Retry-After": "5"})),
    (RuntimeError("boom"),
     (500, {"success": False, "error": "internal_error", "message": "the server failed; see the worker log"}, None)),
])
def test_errors_become_json_responses(raised, expected):
    async def failing(view, request):
        raise raised

    assert asyncio.run(_handler(failing)(FakeView(), FakeRequest())) == expected
